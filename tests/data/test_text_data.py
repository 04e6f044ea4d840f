import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protege.core.errors import UserError
from protege.data.manifest import verify_manifest
from protege.data.text import TextExample, load_text_dataset, save_text_dataset


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_parquet_and_hf_folder_load_the_same_examples(tmp_path):
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(5)]
    jsonl = write_jsonl(tmp_path / "d.jsonl", rows)
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    import datasets
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    expected = [TextExample(r["prompt"], r["completion"]) for r in rows]
    for path in (jsonl, parquet, tmp_path / "hf"):
        assert load_text_dataset(path) == expected


@pytest.mark.parametrize("lines,message", [
    (['{"prompt": "a", "completion": "b"}', '{"prompt": "a", "completion": '], "line 2: invalid JSON"),
    (['{"prompt": "a", "completion": "b"}', '{"prompt": "a"}'], "line 2: missing field 'completion'"),
    (['{"prompt": "a", "completion": "  "}'], "line 1: field 'completion' is empty"),
    (['{"prompt": 3, "completion": "b"}'], "line 1: field 'prompt' must be a string"),
    (['[1, 2]'], "line 1: expected an object"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(UserError, match=message) as info:
        load_text_dataset(path)
    assert "bad.jsonl" in str(info.value)


def test_parquet_row_errors_name_the_row(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "a", "answer": "b"}]), path)
    with pytest.raises(UserError, match=r"bad.parquet row 1: missing field 'completion'"):
        load_text_dataset(path)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_text_dataset(tmp_path / "none.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="unsupported dataset format"):
        load_text_dataset(tmp_path / "x.csv")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="empty"):
        load_text_dataset(tmp_path / "empty.jsonl")


def test_written_dataset_has_a_manifest_and_truncation_is_caught(tmp_path):
    folder = tmp_path / "ds"
    save_text_dataset([TextExample("p", "c")] * 50, folder)
    assert verify_manifest(folder)["files"]["data.jsonl"]["bytes"] > 0
    assert len(load_text_dataset(folder)) == 50
    data = folder / "data.jsonl"
    data.write_bytes(data.read_bytes()[:-40])  # a cut-off copy
    with pytest.raises(UserError, match="truncated or altered"):
        load_text_dataset(folder)
    data.write_bytes(data.read_bytes() + b"x" * 40)  # same size, different bytes
    with pytest.raises(UserError, match="checksum mismatch"):
        load_text_dataset(folder)


def test_cli_validate_reports_line(cli, tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", ['{"prompt": "a", "completion": "b"}', "{oops"])
    code, out = cli("data", "validate", "bad.jsonl")
    assert code == 2 and "bad.jsonl line 2" in out and "Traceback" not in out
