"""The import contract: which package of `ivr` may import which (docs/architecture.md).

Every `import ivr.x` and `from ivr.x import ...` in the package is read from the source,
wherever it stands (top of the module, inside a function, under TYPE_CHECKING): a
dependency for type hints is still a dependency of meaning. A new import that goes
against the table fails here with its file and line; a new package fails until it is
given its place in the table.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ivr"

# What each package may import, besides itself. Lower layers first: a package may only
# import packages listed above it, so the table is also the order of the layers.
ALLOWED: dict[str, set[str]] = {
    "clock": set(),
    "events": set(),
    "filemodes": set(),
    "metrics_access": set(),
    "yamldoc": set(),
    "errors": {"yamldoc"},  # DiagnosticsError carries the findings about a YAML file
    "settings": {"yamldoc", "errors"},
    "flow": {"settings", "yamldoc", "errors"},
    "prompts": {"flow", "settings", "yamldoc", "errors", "filemodes"},
    "installation": {"prompts", "flow", "settings", "yamldoc"},
    "engine": {"flow", "settings", "events", "clock", "errors"},
    "channels": {"engine", "flow", "prompts", "events", "clock", "errors", "filemodes"},
    "lookup": {"engine", "settings", "errors"},
    "asterisk": {"settings", "clock", "errors"},
    "store": {"events", "settings", "errors", "filemodes"},
    "recordings": {"store", "settings", "errors"},
    "web": {"installation", "store", "recordings", "flow", "settings", "events", "errors", "filemodes",
            "metrics_access"},
    "simulation": {"engine", "channels", "flow", "settings", "events", "clock", "errors", "yamldoc"},
    "live": {"installation", "engine", "channels", "asterisk", "store", "flow", "prompts", "settings", "events", "clock",
             "errors", "lookup", "filemodes", "metrics_access"},
    "demo": {"installation", "engine", "channels", "store", "recordings", "prompts", "flow", "settings", "events",
             "clock", "errors", "filemodes"},
    "testbed": {"asterisk", "prompts", "settings", "errors", "filemodes"},
    "cli": {"installation", "live", "testbed", "demo", "simulation", "web", "recordings", "store", "asterisk",
            "channels", "engine", "prompts", "flow", "settings", "yamldoc", "events", "clock", "errors", "lookup", "filemodes",
            "metrics_access"},
}


def package_of(path: Path) -> str:
    """The top-level package (or module) of `ivr` a file belongs to."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def ivr_imports(source: str, module: str = "ivr") -> Iterator[tuple[int, str]]:
    """(line, module) of every import of an `ivr` module in `source`, the source of
    `module` (which resolves relative imports)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # from . import x, from ..engine import y
                base = module.split(".")[: len(module.split(".")) - node.level]
                target = ".".join([*base, target] if target else base)
            if target == "ivr":  # from ivr import x: x is the module
                for alias in node.names:
                    yield node.lineno, f"ivr.{alias.name}"
            elif target.startswith("ivr."):
                yield node.lineno, target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ivr."):
                    yield node.lineno, alias.name


def violations(path: Path, source: str) -> list[str]:
    """The imports of one file that the table does not allow, as `file:line: ...`."""
    own = package_of(path)
    allowed = ALLOWED.get(own)
    where = path.relative_to(PACKAGE.parent)
    if allowed is None:
        return [f"{where}: package ivr.{own} has no place in ALLOWED of tests/test_architecture.py"]
    found = []
    dotted = ".".join(("ivr", *path.relative_to(PACKAGE).with_suffix("").parts))
    if path.name == "__init__.py":  # a package's own module: relative imports start inside it
        dotted = dotted.removesuffix(".__init__") + ".__init__"
    for line, module in ivr_imports(source, dotted):
        target = module.split(".")[1]
        if target.startswith("__") or target == own or target in allowed or module == "ivr":
            continue
        found.append(f"{where}:{line}: ivr.{own} may not import {module}")
    return found


def sources() -> list[Path]:
    # Alembic's migration scripts are loaded by Alembic, not imported by the package
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts and p != PACKAGE / "__init__.py")


def test_every_import_follows_the_contract():
    found = [v for path in sources() for v in violations(path, path.read_text(encoding="utf-8"))]
    assert found == [], "imports against the contract (docs/architecture.md):\n" + "\n".join(found)


def test_the_contract_is_layered():
    """Each package imports only packages listed before it: no cycle can pass the table."""
    order = list(ALLOWED)
    late = [f"ivr.{pkg} -> ivr.{dep}" for pkg, deps in ALLOWED.items() for dep in deps
            if dep not in ALLOWED or order.index(dep) >= order.index(pkg)]
    assert late == []


def test_every_package_is_in_the_table():
    assert {package_of(p) for p in sources()} == set(ALLOWED)


def test_the_architecture_page_states_the_same_table():
    """docs/architecture.md's table of packages says what ALLOWED says, row for row."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    row = re.compile(r"^\| `ivr\.(\w+)` \| .+ \| ([^|]+) \|$", re.M)
    stated = {}
    for name, deps in row.findall(doc):
        deps = deps.strip()
        stated[name] = set() if deps == "nothing" else set(ALLOWED) - {name} if deps == "everything" else set(deps.split(", "))
    assert stated == ALLOWED


@pytest.mark.parametrize("source, expected", [
    ("from ivr.engine.call import Call\n", ["ivr/store/x.py:1: ivr.store may not import ivr.engine.call"]),
    ("import ivr.live.serve\n", ["ivr/store/x.py:1: ivr.store may not import ivr.live.serve"]),
    ("from ivr import web\n", ["ivr/store/x.py:1: ivr.store may not import ivr.web"]),
    ("def f():\n    from ivr.channels import agi\n", ["ivr/store/x.py:2: ivr.store may not import ivr.channels"]),
    ("from ..engine.call import Call\n", ["ivr/store/x.py:1: ivr.store may not import ivr.engine.call"]),
    ("from .. import web\n", ["ivr/store/x.py:1: ivr.store may not import ivr.web"]),
    ("from ivr.events import Event\nfrom ivr.store.db import x\nfrom . import models\nimport os\n", []),
])
def test_the_checker_finds_imports_wherever_they_stand(source, expected):
    assert violations(PACKAGE / "store" / "x.py", source) == expected
