"""Prompt/completion text datasets from JSONL, Parquet or a local Hugging Face `datasets` folder.

Rows are validated on load: a malformed row raises `UserError` naming the file, the line (JSONL) or
row (Parquet/datasets) and the field.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.data.episodes import Episode
from protege.data.manifest import read_manifest, verify_manifest


@dataclass(frozen=True)
class TextExample:
    prompt: str
    completion: str

    def to_episode(self, prompt_ids: list[int], completion_ids: list[int]) -> Episode:
        """The token-level MDP: state = prompt + completion prefix, action = next token, V = 0 at the end."""
        ids = np.asarray(prompt_ids + completion_ids)
        steps = len(completion_ids)
        prefixes = np.stack([np.pad(ids[:len(prompt_ids) + t], (0, steps - t))
                             for t in range(steps + 1)])
        return Episode(observations=prefixes, actions=np.asarray(completion_ids),
                       rewards=np.zeros(steps, dtype=np.float32), terminated=True,
                       instruction=self.prompt)


def load_text_dataset(path: str | Path, prompt_field: str = "prompt",
                      completion_field: str = "completion") -> list[TextExample]:
    """Read examples from a .jsonl/.json file, a .parquet file, or a `datasets.save_to_disk` folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"dataset {path} does not exist")
    if path.is_dir() and read_manifest(path) is not None:
        kind = read_manifest(path)["meta"].get("kind")
        if kind not in (None, TEXT_KIND):
            raise UserError(f"{path}: a {kind} folder, not a prompt/completion dataset")
        verify_manifest(path)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()
                         or (path / "dataset_dict.json").exists()):
        rows = _hf_rows(path)
        where = "row"
    elif path.is_dir():
        files = [f for f in sorted(path.glob("*.jsonl")) + sorted(path.glob("*.parquet"))
                 if not f.name.startswith(".") and f.is_file()]  # hidden: not data (see manifest)
        if not files:
            raise UserError(f"{path}: folder holds no .jsonl or .parquet file and is not a saved "
                            f"HF datasets folder")
        return [ex for f in files for ex in load_text_dataset(f, prompt_field, completion_field)]
    elif path.suffix in (".jsonl", ".json"):
        rows, where = read_jsonl(path), "line"
    elif path.suffix == ".parquet":
        rows, where = _parquet_rows(path), "row"
    else:
        raise UserError(f"{path}: unsupported dataset format {path.suffix!r} "
                        f"(valid: .jsonl, .json, .parquet, a saved HF datasets folder)")
    examples = [_example(row, number, path, where, prompt_field, completion_field)
                for number, row in rows]
    if not examples:
        raise UserError(f"{path}: dataset is empty")
    return examples


def _example(row, number: int, path: Path, where: str, prompt_field: str, completion_field: str):
    if not isinstance(row, dict):
        raise UserError(f"{path} {where} {number}: expected an object with fields "
                        f"{prompt_field!r} and {completion_field!r}, got {type(row).__name__}")
    for name in (prompt_field, completion_field):
        if name not in row:
            raise UserError(f"{path} {where} {number}: missing field {name!r} "
                            f"(fields present: {', '.join(map(str, row)) or 'none'})")
        if not isinstance(row[name], str):
            raise UserError(f"{path} {where} {number}: field {name!r} must be a string, "
                            f"got {type(row[name]).__name__}")
    if not row[completion_field].strip():
        raise UserError(f"{path} {where} {number}: field {completion_field!r} is empty")
    return TextExample(row[prompt_field], row[completion_field])


def utf8_lines(path: Path, what: str):
    """(line number, text) of each line of a UTF-8 text file; bytes that are not UTF-8 raise a
    `UserError` naming the file and line (a binary or Latin-1 file is refused, not half-read)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path} line {number}: not UTF-8 text (byte {e.start + 1} of the "
                                f"line); expected {what}") from None


def read_jsonl(path: Path, what: str = "JSON lines"):
    """(line number, value) of each non-blank line of a JSON-lines file: the one JSONL reader
    (text datasets, page texts); text that is not UTF-8 or a line that is not JSON is a
    `UserError` naming the file and line."""
    for number, line in utf8_lines(path, what):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {number}: invalid JSON ({e.msg}); expected {what}") from None


def _parquet_rows(path: Path):
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise UserError(f"{path}: cannot read Parquet ({e})") from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield number, row


def _hf_rows(path: Path):
    import datasets
    try:
        data = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UserError(f"{path}: cannot read HF datasets folder ({e})") from None
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise UserError(f"{path}: DatasetDict has no 'train' split (splits: {', '.join(data)})")
        data = data["train"]
    for number, row in enumerate(data, start=1):
        yield number, row


TEXT_KIND = "protege.text.dataset"
"""The manifest kind of a prompt/completion dataset folder written by `save_text_dataset`."""


def save_text_dataset(examples: list[TextExample], path: Path) -> None:
    """Write examples as JSONL atomically: `path` ending in .jsonl is one file; any other `path` is
    a folder (data.jsonl + checksum manifest) that may only be new, empty or an earlier dataset."""
    from protege.core.atomic import atomic_path
    from protege.data.manifest import output_folder, write_manifest
    path = Path(path)
    if not examples:
        raise UserError(f"{path}: no examples to write (an empty dataset is refused)")
    if path.suffix == ".jsonl":
        with atomic_path(path) as tmp:
            _write_jsonl(examples, tmp)
        return
    with output_folder(path, TEXT_KIND) as tmp:
        _write_jsonl(examples, tmp / "data.jsonl")
        write_manifest(tmp, {"kind": TEXT_KIND, "examples": len(examples)})


def _write_jsonl(examples: list[TextExample], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"prompt": ex.prompt, "completion": ex.completion}) + "\n")
