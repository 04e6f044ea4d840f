"""The house rules, checked on every import statement of src/protege (see docs/architecture.md).

Layers, lowest first: core < data < worlds, nn, losses < rl, eval < systems < cli. A module may import
its own layer or a lower one, never a higher one; a system never imports another system.
"""

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "protege"
RANK = {"core": 0, "data": 1, "worlds": 2, "nn": 2, "losses": 2, "rl": 3, "eval": 3, "systems": 4, "cli": 5}
# Same rank is not enough where the house forbids an arrow outright.
NEVER = {("losses", "data"), ("losses", "worlds"), ("nn", "rl"), ("nn", "worlds"), ("nn", "losses"), ("worlds", "nn"),
         ("worlds", "losses"), ("rl", "worlds"), ("rl", "eval"), ("eval", "rl"), ("eval", "nn"),
         ("eval", "worlds"), ("eval", "losses")}


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("protege.")]


def where(module: str) -> tuple[str, str | None]:
    """(layer, system or None) of a dotted module path or a file's path parts."""
    parts = module.split(".")[1:]
    return parts[0], (parts[1] if parts[0] == "systems" and len(parts) > 1 else None)


def violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if len(parts) < 2 or parts[1] not in RANK:  # protege/__main__.py, protege/__init__.py
            continue
        own = ".".join(parts)
        layer, system = where(own)
        for line, name in imports(path):
            other, other_system = where(name)
            if other not in RANK:
                bad.append(f"{path}:{line}: imports {name}, outside every layer")
            elif RANK[other] > RANK[layer] or (layer, other) in NEVER:
                bad.append(f"{path}:{line}: {layer} imports {name} ({other})")
            elif system and other_system and other_system != system:
                bad.append(f"{path}:{line}: system {system} imports system {other_system}")
    return bad


def test_no_upward_or_cross_system_imports():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "protege"
    (fake / "core").mkdir(parents=True)
    (fake / "systems" / "a").mkdir(parents=True)
    (fake / "core" / "x.py").write_text("from protege.systems.a import y\n")
    (fake / "systems" / "a" / "m.py").write_text("import protege.systems.b.n\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = violations()
    assert any("core imports protege.systems.a" in v for v in found)
    assert any("system a imports system b" in v for v in found)
