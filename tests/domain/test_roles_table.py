"""The README's roles table is ``ROLE_TABLE``, rendered: pasted from ``roles_markdown_table()``."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from loopgate.domain.teams import (
    PERMISSION_HELP,
    ROLE_TABLE,
    ROLES,
    Permission,
    roles_markdown_table,
)

README = Path(__file__).parent.parent.parent / "README.md"
HEADER = roles_markdown_table().splitlines()[0]


def readme_roles_table() -> str:
    """The table in README.md that starts with the roles table's header, up to its end."""
    lines = README.read_text().splitlines()
    assert lines.count(HEADER) == 1, "README.md must hold the roles table once"
    start = lines.index(HEADER)
    end = next(n for n in range(start, len(lines)) if not lines[n].startswith("|"))
    return "\n".join(lines[start:end]) + "\n"


def test_the_readme_table_is_the_role_table() -> None:
    assert readme_roles_table() == roles_markdown_table(), (
        "README.md's roles table differs from ROLE_TABLE: paste roles_markdown_table()"
    )


def test_the_table_has_a_row_per_permission_and_a_mark_where_the_role_allows_it() -> None:
    rows = roles_markdown_table().splitlines()[2:]
    assert len(rows) == len(get_args(Permission)) == len(PERMISSION_HELP)
    for permission, row in zip(get_args(Permission), rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0].startswith(f"`{permission}`")
        marked = {role for role, cell in zip(ROLES, cells[1:], strict=True) if cell == "✓"}
        assert marked == {role for role in ROLES if permission in ROLE_TABLE[role]}


def test_an_auditor_never_answers_and_only_an_owner_transfers_ownership() -> None:
    rows = {row.split("`")[1]: row for row in roles_markdown_table().splitlines()[2:]}
    assert rows["request.answer"].endswith("| ✓ | ✓ | ✓ |  |")
    assert rows["ownership.transfer"].endswith("| ✓ |  |  |  |")
