"""Read dictd databases (`NAME.index` + `NAME.dict.dz`), as shipped by Debian's dict-* packages.

The index lines are `headword TAB offset TAB length` with offset and length in dictd's base64
(digits A-Z a-z 0-9 + /); the data file is dictzip, which gzip reads. Written by hand because no
maintained PyPI package reads dictd files.
"""

import gzip
from dataclasses import dataclass
from pathlib import Path

from protege.core.errors import UserError

DICTD_DIR = Path("/usr/share/dictd")
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


@dataclass(frozen=True)
class DictEntry:
    headwords: tuple[str, ...]
    """every index headword that points at this definition (aliases included)"""
    text: str
    """the raw definition text, first line being the headword"""


def b64_number(text: str, where: str) -> int:
    value = 0
    for char in text:
        if char not in _B64:
            raise UserError(f"{where}: invalid dictd base64 number {text!r}")
        value = value * 64 + _B64[char]
    return value


def dictd_paths(path: str | Path) -> tuple[Path, Path]:
    """(index, data) of a database given as its folder+name, its .index, or a name in /usr/share/dictd."""
    path = Path(path)
    if not path.exists() and not path.with_suffix(".index").exists() and "/" not in str(path):
        path = DICTD_DIR / str(path)
    base = Path(str(path).removesuffix(".index").removesuffix(".dict.dz").removesuffix(".dict"))
    index = base.with_name(base.name + ".index")
    data = next((p for p in (base.with_name(base.name + ".dict.dz"), base.with_name(base.name + ".dict"))
                 if p.exists()), None)
    if not index.exists() or data is None:
        raise UserError(f"dictd database {path}: need {index} and {base.name}.dict.dz "
                        f"(FOLDOC: apt-get install dict-foldoc)")
    return index, data


def read_dictd(path: str | Path) -> list[DictEntry]:
    """All definitions of a dictd database, in file order, skipping its `00-database-*` records."""
    index, data_path = dictd_paths(path)
    opener = gzip.open if data_path.suffix == ".dz" else open
    with opener(data_path, "rb") as f:
        data = f.read()
    heads: dict[tuple[int, int], list[str]] = {}
    with open(index, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                raise UserError(f"{index} line {number}: expected 'headword<TAB>offset<TAB>length'")
            where = f"{index} line {number}"
            span = (b64_number(parts[1], where), b64_number(parts[2], where))
            if span[0] + span[1] > len(data):
                raise UserError(f"{where}: entry points past the end of {data_path} (truncated file?)")
            if not parts[0].startswith("00-database") and not parts[0].startswith("00database"):
                heads.setdefault(span, []).append(parts[0])
    return [DictEntry(tuple(names), data[start:start + length].decode("utf-8", errors="replace"))
            for (start, length), names in sorted(heads.items())]
