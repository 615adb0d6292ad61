"""The architecture as the tree shows it: imports inside pad_data only go down the layers."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pad_data"
# Lower number = lower layer. A module may import its own layer or any lower one.
LAYERS = {"rules": 0, "sandbox": 0, "store": 1, "teachers": 1, "stages": 2, "review": 3, "engines": 3,
          "api": 4, "cli": 5}


def _layer(module: str) -> tuple[str, int] | None:
    """The layer of ``pad_data.<part>...``; None for the package itself (its names load api lazily)."""
    parts = module.split(".")
    if parts[0] != "pad_data" or len(parts) < 2:
        return None
    return parts[1], LAYERS[parts[1]]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every pad_data module the file imports, at any depth of the code (function-level ones too)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import (pad_data imports are absolute)"
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "pad_data"]
    return [(line, m) for line, m in found if m.startswith("pad_data")]


def test_every_top_level_part_of_pad_data_has_a_layer():
    parts = {p.stem for p in PACKAGE.iterdir() if not p.name.startswith(("_", ".")) and p.name != "py.typed"}
    assert parts == set(LAYERS)


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        here = _layer(".".join(("pad_data",) + parts[: -1 if parts[-1] == "__init__" else None]))
        if here is None:
            continue
        for line, module in _imports(path):
            there = _layer(module)
            if there is not None and there[1] > here[1]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here[0]} imports {module} ({there[0]})")
    assert upward == []
