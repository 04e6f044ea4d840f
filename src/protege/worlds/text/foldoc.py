"""FOLDOC term -> definition: real text from Debian's dict-foldoc database (/usr/share/dictd/foldoc.*).

The completion is the start of the definition, cleaned of FOLDOC's markup ({cross-references},
<category> tags, pronunciations and dates), cut at a sentence end within `max_words` words.
"""

import random
import re

from protege.core.errors import UserError
from protege.data.text import TextExample
from protege.worlds.text.dictd import read_dictd

_MARKUP = [(re.compile(r"\{([^}]*)\}"), r"\1"), (re.compile(r"<[^>]*>"), " "),
           (re.compile(r"/[^/\s][^/]*/"), " "), (re.compile(r"\(\d{4}-\d{2}-\d{2}\)"), " "),
           (re.compile(r"\s+"), " ")]


def clean_definition(text: str, max_words: int = 40) -> str:
    body = text.split("\n", 1)[1] if "\n" in text else text
    for pattern, repl in _MARKUP:
        body = pattern.sub(repl, body)
    words = body.strip().split(" ")
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind(".") if cut.endswith(".") else -1)
    return (cut[:end + 1] if end > 20 else cut).strip()


def foldoc_examples(database: str = "foldoc", max_words: int = 40) -> list[TextExample]:
    examples = []
    for entry in read_dictd(database):
        definition = clean_definition(entry.text, max_words)
        if len(definition.split()) >= 4:
            examples.append(TextExample(f"Define: {entry.headwords[0]}", definition))
    if not examples:
        raise UserError(f"dictd database {database}: no usable definitions")
    return examples


def split(train_size: int, eval_size: int, seed: int, database: str = "foldoc"):
    from protege.worlds.text.tasks import TaskData
    examples = foldoc_examples(database)
    random.Random(seed).shuffle(examples)
    held_out, train = examples[:eval_size], examples[eval_size:]
    return TaskData(train[:train_size] if train_size else train, held_out)
