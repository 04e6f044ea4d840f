"""`protege data validate`: check any dataset protege writes or reads, without starting a run.

A folder's manifest names its kind; the systems register a checker per kind
(`System.datasets`, e.g. BabyAI demonstrations, Control Suite demonstrations, graphs, walks), so a
new kind of dataset needs no change here. Without a manifest kind, a path is a prompt/completion
text dataset (.jsonl, .parquet, a saved HF datasets folder).
"""

import importlib
from pathlib import Path

from protege.core.errors import UserError
from protege.core.registry import dataset_readers
from protege.data.manifest import read_manifest
from protege.data.text import TEXT_KIND, load_text_dataset


def validate_dataset(path: Path, prompt_field: str = "prompt",
                     completion_field: str = "completion") -> tuple[str, dict]:
    """(what the dataset is, a summary row); a `UserError` names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    meta = (read_manifest(path) or {}).get("meta", {}) if path.is_dir() else {}
    kind = meta.get("kind") or meta.get("format")
    readers = dataset_readers()
    if kind in readers:
        module, function = readers[kind].split(":")
        return getattr(importlib.import_module(module), function)(path)
    if kind not in (None, TEXT_KIND):
        raise UserError(f"{path}: unknown dataset kind {kind!r} in its manifest "
                        f"(known: {', '.join(sorted([TEXT_KIND, *readers]))})")
    if kind is None and (path / "config.yaml").is_file():
        raise UserError(f"{path}: a run directory, not a dataset")
    examples = load_text_dataset(path, prompt_field, completion_field)
    return "prompt/completion dataset", {
        "examples": len(examples),
        "mean prompt chars": sum(len(e.prompt) for e in examples) / len(examples),
        "mean completion chars": sum(len(e.completion) for e in examples) / len(examples)}
