"""FOLDOC term -> definition: real text from Debian's dict-foldoc database (/usr/share/dictd/foldoc.*).

The completion is the start of the definition, cleaned of FOLDOC's markup ({cross-references},
<category> tags, pronunciations and dates), cut at a sentence end within `max_words` words; with
`first_sentence` only its first sentence (a shorter target: what the term is, without the detail).

The prompt names the term. dictd's index lower-cases its headwords ("beos", "berard object and class
specifier") while the entry's header, the lines before its first blank line, holds the term as FOLDOC
writes it and its aliases ("Berard Object and Class Specifier" / "BOCS"). `term="index"` (the
original task) prompts with the index headword and takes the definition from the entry's second
line on, so alias lines lead about a fifth of its targets ("thicknet An Ethernet network ...");
`term="as_written"` prompts with the header line that is that headword as written and takes the
definition from after the whole header, so a model can copy the term's words and initials as the
reference spells them.
"""

import random
import re

from protege.core.errors import UserError
from protege.data.text import TextExample
from protege.worlds.text.dictd import read_dictd

PROMPT = "Define: "
"""what every FOLDOC prompt says before the term"""

_MARKUP = [(re.compile(r"\{([^}]*)\}"), r"\1"), (re.compile(r"<[^>]*>"), " "),
           (re.compile(r"/[^/\s][^/]*/"), " "), (re.compile(r"\(\d{4}-\d{2}-\d{2}\)"), " "),
           (re.compile(r"\s+"), " ")]
# sense numbers at the start or after a bracketed etymology: "1. A query language." -> "A query
# language.", "(From X) 1. A unit." -> "(From X) A unit."
_SENSE_NUMBER = re.compile(r"(?:^|(?<=\) ))(?:\d+\.|\(\d+\))\s+")
# a sentence ends at . ! or ? before a capital, digit, bracket or quote ("e.g. the" does not end one)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"])")


TERMS = ("index", "as_written")


def header_lines(text: str) -> list[str]:
    """The entry's header: its lines before the first blank line (the term and its aliases), each
    with its runs of whitespace made single spaces."""
    return [" ".join(line.split()) for line in text.split("\n\n", 1)[0].split("\n")]


def term_as_written(headword: str, text: str) -> str:
    """The header line that is `headword` up to case; the headword itself when none is (a header
    line wrapped in two)."""
    wanted = " ".join(headword.split()).lower()
    return next((line for line in header_lines(text) if line.lower() == wanted), headword)


def clean_definition(text: str, max_words: int = 40, skip_header: bool = False) -> str:
    """The definition's start: the text after the first line (after the whole header, aliases
    included, with `skip_header`), markup removed, cut at a sentence end within `max_words` words."""
    if skip_header:
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    else:
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


def foldoc_examples(database: str = "foldoc", max_words: int = 40, only_first_sentence: bool = False,
                    term: str = "index") -> list[TextExample]:
    """One example per entry whose cleaned definition (from its second line on, before any
    first-sentence cut) has >= 4 words, and with `term="as_written"` a definition after the header
    too: the same terms in the same order for every target and nearly every term choice, so the
    seeded split holds out the same terms (see `term_as_written` for the prompt)."""
    if term not in TERMS:
        raise UserError(f"task.term: unknown value {term!r}; valid: {', '.join(TERMS)}")
    as_written = term == "as_written"
    examples = []
    for entry in read_dictd(database):
        definition = clean_definition(entry.text, max_words)
        if len(definition.split()) < 4:
            continue
        name = entry.headwords[0]
        if as_written:
            definition, name = clean_definition(entry.text, max_words, skip_header=True), \
                term_as_written(name, entry.text)
            if not definition:
                continue
        target = first_sentence(definition) if only_first_sentence else definition
        examples.append(TextExample(f"{PROMPT}{name}", target))
    if not examples:
        raise UserError(f"dictd database {database}: no usable definitions")
    return examples


def term_of(example: TextExample) -> str:
    """The term a FOLDOC prompt asks for ("Define: BeOS" -> "BeOS")."""
    return example.prompt.removeprefix(PROMPT)


def restated(examples: list[TextExample]) -> list[TextExample]:
    """The examples with each completion opening with its term as the prompt writes it ("Define:
    BeOS" -> "BeOS: An operating system ..."): a training target that teaches the model to copy the
    term before defining it (a small model trained from scratch rarely learns to copy the term's
    words where the reference has them, which a copy of the term gets for free). Only for training:
    the held-out references stay the definitions."""
    return [TextExample(e.prompt, f"{term_of(e)}: {e.completion}") for e in examples]


def split(train_size: int, eval_size: int, seed: int, database: str = "foldoc", max_words: int = 40,
          only_first_sentence: bool = False, term: str = "index") -> tuple[list[TextExample], list[TextExample]]:
    """(train, held out): a seeded shuffle of the examples, the first eval_size held out, then the first
    train_size of the rest (0 = all)."""
    examples = foldoc_examples(database, max_words, only_first_sentence, term)
    random.Random(seed).shuffle(examples)
    held_out, train = examples[:eval_size], examples[eval_size:]
    return train[:train_size] if train_size else train, held_out
