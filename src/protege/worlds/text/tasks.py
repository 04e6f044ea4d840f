"""Prompt/completion tasks for language models: built-in ones and the user's own files."""

from dataclasses import dataclass
from typing import Literal

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import added_config_key
from protege.data.text import TextExample, load_text_dataset

# runs saved before restate_term trained on the plain definitions: they resume as such
added_config_key("task.restate_term", False)


@dataclass
class TaskConfig:
    kind: Literal["arithmetic", "foldoc", "file"] = "arithmetic"
    """arithmetic: generated word problems; foldoc: FOLDOC term -> definition; file: `path`"""
    train_size: int = 20000
    """examples to train on (arithmetic generates them; foldoc and file take the first N, 0 = all)"""
    eval_size: int = 200
    """held-out prompts to evaluate on"""
    path: str = ""
    """file task: training data (.jsonl, .parquet or a saved HF datasets folder)"""
    eval_path: str = ""
    """file task: held-out data; empty takes the last eval_size rows of `path`"""
    prompt_field: str = "prompt"
    """file task: the column (or JSON key) holding the prompt"""
    completion_field: str = "completion"
    """file task: the column (or JSON key) holding the completion"""
    overflow: Literal["truncate", "refuse"] = "truncate"
    """what to do with examples longer than the model's context"""
    definition: Literal["start", "first_sentence"] = "start"
    """foldoc: the completion is the definition's start (cut at a sentence end within
    definition_words words) or only its first sentence (a shorter, more learnable target)"""
    definition_words: int = 40
    """foldoc: most words of the definition kept (before any first-sentence cut)"""
    term: Literal["index", "as_written"] = "index"
    """foldoc: the term in the prompt as dictd's index has it (lower-cased; the definition starts at
    the entry's second line, alias lines included) or as FOLDOC writes it ("BeOS"; the definition
    starts after the term's header lines)"""
    restate_term: bool = False
    """foldoc: the training completions open with the term ("BeOS: An operating system ..."), so the
    model learns to copy it; the held-out references and the baselines' training completions stay
    the plain definitions (see `training_examples`)"""

    def __post_init__(self):
        check_fields(self, train_size=">=0", eval_size=">=1", prompt_field="nonempty",
                     completion_field="nonempty", definition_words=">=1")
        if self.restate_term and self.kind != "foldoc":
            raise ValueError(f"restate_term=true is for kind=foldoc (a term to restate), not kind={self.kind}")
        if self.kind == "arithmetic" and self.train_size == 0:
            raise ValueError("train_size must be >= 1 for kind=arithmetic (0 = all is for foldoc "
                             "and file tasks)")


@dataclass(frozen=True)
class TaskData:
    train: list[TextExample]
    eval: list[TextExample]
    """held-out prompts with one reference completion each"""


def load_task(cfg: TaskConfig, seed: int) -> TaskData:
    if cfg.kind == "arithmetic":
        from protege.worlds.text import arithmetic
        held_out = arithmetic.generate(cfg.eval_size, seed=10_000 + seed)
        train = arithmetic.generate(cfg.train_size, seed=seed, exclude={e.prompt for e in held_out})
        return TaskData(train, held_out)
    if cfg.kind == "foldoc":
        from protege.worlds.text import foldoc
        return TaskData(*foldoc.split(cfg.train_size, cfg.eval_size, seed, max_words=cfg.definition_words,
                                      only_first_sentence=cfg.definition == "first_sentence", term=cfg.term))
    if not cfg.path:
        raise UserError("task.kind=file needs task.path (a .jsonl, .parquet or HF datasets folder)")
    rows = load_text_dataset(cfg.path, cfg.prompt_field, cfg.completion_field)
    if cfg.eval_path:
        held_out = load_text_dataset(cfg.eval_path, cfg.prompt_field, cfg.completion_field)
    else:
        if len(rows) <= cfg.eval_size:
            raise UserError(f"{cfg.path}: {len(rows)} rows, not enough to hold out eval_size="
                            f"{cfg.eval_size} (set task.eval_path or a smaller task.eval_size)")
        rows, held_out = rows[:-cfg.eval_size], rows[-cfg.eval_size:]
    train = rows[:cfg.train_size] if cfg.train_size else rows
    return TaskData(train, held_out[:cfg.eval_size])


def training_examples(cfg: TaskConfig, data: TaskData) -> list[TextExample]:
    """What the model trains on: the task's training examples, with FOLDOC's term restated at the
    start of each completion under `restate_term` (the baselines keep `data.train`)."""
    if cfg.restate_term:
        from protege.worlds.text import foldoc
        return foldoc.restated(data.train)
    return data.train
