"""Regenerate the long-budget tables of docs/results/babyai.md (between <!-- long-cells --> and
<!-- long-runs --> markers) from runs/bcL-* and runs/iqL-* (and any other run folders given).

    PYTHONPATH=src .venv/bin/python scripts/babyai_fill.py runs/bcL-* runs/iqL-*
"""
import contextlib
import io
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from babyai_table import cells, rows  # noqa: E402

DOC = Path("docs/results/babyai.md")


def capture(fn, paths) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(paths)
    return out.getvalue()


def main() -> None:
    paths = sorted(Path(a) for a in sys.argv[1:])
    text = DOC.read_text()
    for tag, fn in (("long-cells", cells), ("long-runs", rows)):
        text = re.sub(rf"<!-- {tag} -->.*?<!-- /{tag} -->",
                      lambda m: f"<!-- {tag} -->\n{capture(fn, paths)}<!-- /{tag} -->", text, flags=re.S)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
