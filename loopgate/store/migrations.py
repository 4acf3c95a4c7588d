"""Numbered SQL migrations per backend, in ``migrations/<backend>/NNN_name.sql``.

Each backend applies the files it has not applied yet, each in its own
transaction, and records them in ``schema_migrations``. Applying twice is a
no-op. The top-level ``migrations/`` directory is installed as the package
``loopgate._migrations`` (``package-dir`` in pyproject.toml), in a wheel and in
an editable install alike, so the files are read as that package's resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

MIGRATIONS_PACKAGE = "loopgate._migrations"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_for(backend: Literal["sqlite", "postgres"]) -> list[Migration]:
    """The backend's migrations in version order; a misnamed file is an error."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).joinpath(backend).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNN_name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers for {backend}: {versions}")
    return found
