"""FOLDOC term -> definition: real text from Debian's dict-foldoc database (/usr/share/dictd/foldoc.*).

The completion is the start of the definition, cleaned of FOLDOC's markup ({cross-references},
<category> tags, pronunciations and dates), cut at a sentence end within `max_words` words; with
`first_sentence` only its first sentence (a shorter target: what the term is, without the detail).
"""

import random
import re

from protege.core.errors import UserError
from protege.data.text import TextExample
from protege.worlds.text.dictd import read_dictd

_MARKUP = [(re.compile(r"\{([^}]*)\}"), r"\1"), (re.compile(r"<[^>]*>"), " "),
           (re.compile(r"/[^/\s][^/]*/"), " "), (re.compile(r"\(\d{4}-\d{2}-\d{2}\)"), " "),
           (re.compile(r"\s+"), " ")]
# sense numbers at the start or after a bracketed etymology: "1. A query language." -> "A query
# language.", "(From X) 1. A unit." -> "(From X) A unit."
_SENSE_NUMBER = re.compile(r"(?:^|(?<=\) ))(?:\d+\.|\(\d+\))\s+")
# a sentence ends at . ! or ? before a capital, digit, bracket or quote ("e.g. the" does not end one)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"])")


def clean_definition(text: str, max_words: int = 40) -> str:
    body = text.split("\n", 1)[1] if "\n" in text else text
    for pattern, repl in _MARKUP:
        body = pattern.sub(repl, body)
    words = body.strip().split(" ")
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind(".") if cut.endswith(".") else -1)
    return (cut[:end + 1] if end > 20 else cut).strip()


def first_sentence(definition: str) -> str:
    """The first sentence of a cleaned definition, without a leading sense number; the whole
    definition when that would leave nothing."""
    sentence = _SENTENCE_END.split(_SENSE_NUMBER.sub("", definition), maxsplit=1)[0].strip()
    return sentence or definition


def foldoc_examples(database: str = "foldoc", max_words: int = 40,
                    only_first_sentence: bool = False) -> list[TextExample]:
    """One example per entry whose cleaned definition has >= 4 words; the filter is on the cleaned
    definition before any first-sentence cut, so both targets hold out the same terms."""
    examples = []
    for entry in read_dictd(database):
        definition = clean_definition(entry.text, max_words)
        if len(definition.split()) >= 4:
            target = first_sentence(definition) if only_first_sentence else definition
            examples.append(TextExample(f"Define: {entry.headwords[0]}", target))
    if not examples:
        raise UserError(f"dictd database {database}: no usable definitions")
    return examples


def split(train_size: int, eval_size: int, seed: int, database: str = "foldoc", max_words: int = 40,
          only_first_sentence: bool = False) -> tuple[list[TextExample], list[TextExample]]:
    """(train, held out): a seeded shuffle of the examples, the first eval_size held out, then the first
    train_size of the rest (0 = all)."""
    examples = foldoc_examples(database, max_words, only_first_sentence)
    random.Random(seed).shuffle(examples)
    held_out, train = examples[:eval_size], examples[eval_size:]
    return train[:train_size] if train_size else train, held_out
