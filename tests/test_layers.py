"""Where things live is checked, not hoped for: layer order and private modules.

The layers are DESIGN.md's: a package imports only from its own layer or lower, and never
from another package's ``_private`` module (cross-package use goes through ``__all__``).
The foundation modules (errors, settings, ``_time``, ``_threads``, ``_memory``) are open to
everyone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mlprod

SRC = Path(mlprod.__file__).parent
FOUNDATION = {"errors", "settings", "_time", "_threads", "_memory", "__init__", "__main__"}
LAYERS = [
    "spec",
    "store",
    "records",
    "bundle",
    "data",
    "features",
    "training",
    "evaluation",
    "registry",
    "monitoring",
    "online",
    "predlog",
    "serving",
    "batch",
    "pipelines",
    "scheduling",
    "dashboard",
    ("cli", "testing", "client"),
]
RANK = {
    name: rank
    for rank, layer in enumerate(LAYERS)
    for name in (layer if isinstance(layer, tuple) else (layer,))
}


def _package(module: str) -> str:
    """``mlprod.registry._runs`` -> ``registry``; ``mlprod.client`` -> ``client``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every mlprod import in a file, ``from x import _y`` included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mlprod")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlprod"):
            found.append((node.lineno, node.module))
            found += [
                (node.lineno, f"{node.module}.{a.name}")
                for a in node.names
                if a.name.startswith("_")
                for a in node.names
                if a.name.startswith("_")
            ]
    return found


def _violations(root: Path = SRC) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = path.relative_to(root).parts[0].removesuffix(".py")
        if own in FOUNDATION:
            continue
        for line, module in _imports(path):
            target = _package(module)
            where = f"{path.relative_to(root.parent)}:{line} imports {module}"
            if target in FOUNDATION or target == own:
                continue
            if RANK.get(target, -1) > RANK[own]:
                problems.append(f"{where}: {target} is a higher layer than {own}")
            private = [part for part in module.split(".")[2:] if part.startswith("_")]
            if private:
                problems.append(f"{where}: {'.'.join(private)} is private to {target}")
    return problems


def test_every_package_has_a_layer() -> None:
    packages = {p.name.removesuffix(".py") for p in SRC.iterdir() if not p.name.startswith(".")}
    packages -= FOUNDATION | {"__pycache__", "py.typed"}
    assert packages <= set(RANK), f"add {sorted(packages - set(RANK))} to DESIGN.md and LAYERS"


def test_imports_follow_the_layers_and_skip_no_private_module() -> None:
    assert _violations() == []


def test_the_check_catches_what_it_should(tmp_path: Path) -> None:
    """A test that cannot fail proves nothing: plant both kinds of violation and see them."""
    fake = tmp_path / "mlprod"
    (fake / "spec").mkdir(parents=True)
    (fake / "spec" / "_bad.py").write_text(
        "from mlprod.serving import create_app\nfrom mlprod.registry._runs import get_run\n"
    )
    problems = _violations(fake)
    assert len(problems) == 3, problems  # serving above spec; registry above spec; _runs private
    assert any("higher layer" in p and "serving" in p for p in problems)
    assert any("_runs is private to registry" in p for p in problems)
