"""A manifest checks what it seems to: the folder holds exactly the listed files, nothing outside it,
with their sizes and checksums; a malformed manifest is one line, not a traceback."""

import json

import pytest

from protege.core.errors import UserError
from protege.data.manifest import (
    MANIFEST,
    output_folder,
    read_kind,
    verify_manifest,
    write_manifest,
)
from protege.data.text import TextExample, load_text_dataset, save_text_dataset


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "ds"
    save_text_dataset([TextExample("1+1=", "2"), TextExample("2+2=", "4")], folder)
    return folder


def edit_manifest(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(change(manifest)))


@pytest.mark.parametrize("change,message", [
    (lambda m: {k: v for k, v in m.items() if k != "files"}, "'files' must be an object"),
    (lambda m: {**m, "files": list(m["files"])}, "'files' must be an object"),
    (lambda m: [m], "expected a JSON object"),
    (lambda m: {**m, "files": {"data.jsonl": "abc"}}, "must be"),
    (lambda m: {**m, "meta": []}, "'meta' must be an object"),
    (lambda m: {**m, "files": {**m["files"], "../outside.jsonl": {"bytes": 1, "sha256": "x"}}},
     "leaves the dataset folder"),
    (lambda m: {**m, "files": {**m["files"], "/etc/passwd": {"bytes": 1, "sha256": "x"}}},
     "leaves the dataset folder"),
])
def test_malformed_manifests_are_one_line_errors(dataset, change, message):
    edit_manifest(dataset, change)
    with pytest.raises(UserError, match=message):
        verify_manifest(dataset)
    with pytest.raises(UserError, match=message):
        load_text_dataset(dataset)


def test_a_file_absent_from_the_manifest_is_refused(dataset):
    (dataset / "extra.jsonl").write_text('{"prompt": "p", "completion": "planted"}\n')
    with pytest.raises(UserError, match="extra.jsonl: not listed"):
        load_text_dataset(dataset)


def test_an_emptied_file_list_does_not_accept_altered_data(dataset):
    (dataset / "data.jsonl").write_text('{"prompt": "p", "completion": "altered"}\n')
    edit_manifest(dataset, lambda m: {**m, "files": {}})
    with pytest.raises(UserError, match="data.jsonl: not listed"):
        load_text_dataset(dataset)


def test_hidden_files_are_not_data(dataset):
    (dataset / ".hidden.jsonl").write_text('{"prompt": "p", "completion": "never read"}\n')
    assert [e.completion for e in load_text_dataset(dataset)] == ["2", "4"]


def test_listed_files_missing_or_changed(dataset):
    data = dataset / "data.jsonl"
    data.write_bytes(data.read_bytes()[:-3])
    with pytest.raises(UserError, match="truncated or altered"):
        load_text_dataset(dataset)
    data.unlink()
    with pytest.raises(UserError, match="listed in the manifest but missing"):
        load_text_dataset(dataset)


def test_allowed_caches_may_sit_unlisted(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"1")
    write_manifest(tmp_path, {"kind": "k"})
    (tmp_path / "embeddings-x.safetensors").write_bytes(b"c")
    verify_manifest(tmp_path, unlisted=("embeddings-*.safetensors",))
    with pytest.raises(UserError, match="not listed"):
        verify_manifest(tmp_path)


def test_output_folder_replaces_only_its_own_kind(tmp_path, dataset):
    with pytest.raises(UserError, match="not a other.kind folder"):
        with output_folder(dataset, "other.kind") as tmp:
            (tmp / "x").write_text("x")
    assert [e.completion for e in load_text_dataset(dataset)] == ["2", "4"]
    save_text_dataset([TextExample("3+3=", "6")], dataset)  # same kind: replaced
    assert [e.completion for e in load_text_dataset(dataset)] == ["6"]
    (dataset / ".git").mkdir()
    with pytest.raises(UserError, match=".git"):
        save_text_dataset([TextExample("3+3=", "6")], dataset)
    assert (dataset / ".git").is_dir()


def test_text_datasets_must_be_utf8_and_not_empty(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"prompt": "p", "completion": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"a.jsonl line 2: not UTF-8"):
        load_text_dataset(tmp_path / "a.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(UserError, match="empty"):
        load_text_dataset(tmp_path / "e.jsonl")
    with pytest.raises(UserError, match="no examples"):
        save_text_dataset([], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_read_kind_refuses_a_missing_or_other_kind_folder_in_one_line(tmp_path):
    folder = tmp_path / "export"
    with pytest.raises(UserError, match=r"--export .*: no such studio export folder \(make one with `protege studio export --out`\)"):
        read_kind(folder, "protege.feedback.export", "studio export folder", "protege studio export --out",
                  f"--export {folder}")
    folder.mkdir()
    (folder / "rows.txt").write_text("x")
    write_manifest(folder, {"kind": "protege.nav.graph"})
    with pytest.raises(UserError, match=r"a protege.nav.graph folder, not a studio export folder \(protege.feedback.export\)"):
        read_kind(folder, "protege.feedback.export", "studio export folder", "protege studio export --out")
    assert read_kind(folder, "protege.nav.graph", "graph folder", "protege nav build")["kind"] == "protege.nav.graph"
