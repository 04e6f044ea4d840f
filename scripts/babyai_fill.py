"""Regenerate the long-budget tables of docs/results/babyai.md (between the <!-- long-cells -->,
<!-- long-pairs --> and <!-- long-runs --> markers) from the run folders given.

    PYTHONPATH=src .venv/bin/python scripts/babyai_fill.py runs/bcL-* runs/iqL-* runs/gailL-*
"""
import contextlib
import io
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from babyai_table import cells, pairs, rows  # noqa: E402

DOC = Path("docs/results/babyai.md")


def capture(fn, paths) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(paths)
    return out.getvalue()


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        sys.exit(__doc__)
    missing = [a for a in args if not (Path(a) / "config.yaml").exists()]
    if missing:  # refuse before rewriting the document: a typo must not empty its tables
        sys.exit(f"error: not run directories (no config.yaml): {' '.join(missing)}")
    paths = sorted(Path(a) for a in args)
    text = DOC.read_text()
    for tag, fn in (("long-cells", cells), ("long-pairs", pairs), ("long-runs", rows)):
        text = re.sub(rf"<!-- {tag} -->.*?<!-- /{tag} -->",
                      lambda m: f"<!-- {tag} -->\n{capture(fn, paths)}<!-- /{tag} -->", text, flags=re.S)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
