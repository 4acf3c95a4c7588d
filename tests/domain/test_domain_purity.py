"""The domain is pure: it imports no I/O, store or web module and reads no clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import loopgate.domain

DOMAIN = Path(loopgate.domain.__file__).parent
MODULES = sorted(DOMAIN.rglob("*.py"))

ALLOWED_PROJECT_MODULES = {"loopgate.events", "loopgate.errors"}
# Libraries that only compute: msgspec; RFC 8785 canonical JSON and JSON Schema
# validation for actions (domain/action.py), which never touch a file or the network.
PURE_LIBRARIES = {"msgspec", "rfc8785", "jsonschema"}
# Standard-library modules that would mean I/O, a clock, randomness or ids.
IMPURE_STDLIB = {
    "asyncio",
    "io",
    "logging",
    "os",
    "pathlib",
    "random",
    "secrets",
    "shutil",
    "socket",
    "sqlite3",
    "subprocess",
    "threading",
    "time",
    "urllib",
    "uuid",
}
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def package_of(path: Path) -> str:
    """The dotted package a domain source file belongs to (``loopgate.domain``)."""
    parts = path.relative_to(DOMAIN.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1])


def imported_modules(source: str, package: str) -> list[str]:
    """Absolute names of every module ``source`` imports, relative imports resolved."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from loopgate import events` names the submodule in the alias.
            if module == "loopgate":
                names.extend(f"loopgate.{alias.name}" for alias in node.names)
            else:
                names.append(module)
    return names


def is_allowed(module: str) -> bool:
    top = module.partition(".")[0]
    if top == "loopgate":
        return (
            module in ALLOWED_PROJECT_MODULES
            or module == "loopgate.domain"
            or module.startswith("loopgate.domain.")
        )
    if top in PURE_LIBRARIES:
        return True
    return top in sys.stdlib_module_names and top not in IMPURE_STDLIB


def test_the_check_sees_every_domain_module() -> None:
    assert {"__init__.py", "approval.py", "request.py", "session.py"} <= {m.name for m in MODULES}
    assert {package_of(m) for m in MODULES} == {"loopgate.domain"}


def test_the_check_resolves_relative_and_package_imports() -> None:
    source = "from . import approval\nfrom .. import store\nfrom loopgate import events, web\n"
    assert imported_modules(source, "loopgate.domain") == [
        "loopgate.domain",
        "loopgate.store",
        "loopgate.events",
        "loopgate.web",
    ]


def test_the_check_refuses_store_web_and_io_imports() -> None:
    for module in ["loopgate.store", "loopgate.web.app", "loopgate.hub", "aiohttp", "uuid", "os"]:
        assert not is_allowed(module), module
    for module in ["loopgate.events", "loopgate.domain.approval", "msgspec.structs", "datetime"]:
        assert is_allowed(module), module


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_domain_modules_import_only_stdlib_msgspec_events_and_errors(path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package_of(path))
    assert [m for m in imported if not is_allowed(m)] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_domain_modules_never_read_the_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_READS
    ]
    assert calls == []
