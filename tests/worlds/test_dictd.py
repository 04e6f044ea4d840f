import gzip
from pathlib import Path

import pytest

from protege.core.errors import UserError
from protege.worlds.text.dictd import b64_number, read_dictd
from protege.worlds.text.foldoc import clean_definition, foldoc_examples
from tests.conftest import write_dictd


def test_reads_entries_with_aliases(tmp_path):
    base = write_dictd(tmp_path, [(["alpha", "alias"], "alpha\n\n   The first {letter}.\n\n   (1999-01-01)\n"),
                                  (["beta"], "beta\n\n   Second, see {alpha}.\n")])
    entries = read_dictd(base)
    assert [e.headwords for e in entries] == [("alias", "alpha"), ("beta",)]
    assert clean_definition(entries[0].text) == "The first letter."
    assert b64_number("BJa", "x") == 1 * 64 * 64 + 9 * 64 + 26


def test_truncated_data_and_bad_index_are_reported(tmp_path):
    base = write_dictd(tmp_path, [(["alpha"], "alpha\n\n   text text\n")])
    with gzip.open(tmp_path / "tiny.dict.dz", "wb") as f:
        f.write(b"alp")
    with pytest.raises(UserError, match="tiny.index line 1: entry points past the end"):
        read_dictd(base)
    (tmp_path / "tiny.index").write_text("alpha only-two\n")
    with pytest.raises(UserError, match="line 1"):
        read_dictd(base)
    with pytest.raises(UserError, match="need"):
        read_dictd(tmp_path / "missing")


@pytest.mark.skipif(not Path("/usr/share/dictd/foldoc.index").exists(), reason="dict-foldoc not installed")
def test_real_foldoc_gives_thousands_of_definitions():
    examples = foldoc_examples()
    assert len(examples) > 10_000
    assert all(e.prompt.startswith("Define: ") and "{" not in e.completion for e in examples[:500])
