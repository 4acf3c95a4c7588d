"""An installed wheel, not the source tree, carries and finds the SQL migrations.

The migrations live in the top-level ``migrations/``, outside the ``loopgate``
package, and pyproject.toml's ``package-dir`` installs them as
``loopgate._migrations``. This builds a wheel from the files the Dockerfile
copies into its image (so the image's ``pip install .`` is covered too),
installs it into a new virtualenv and runs that virtualenv's ``loopgate
migrate`` from an empty directory against a fresh database of each backend.

The new virtualenv has no pip (creating one with pip takes 15 s here): the
running pip (22.3 or newer) installs into it with ``--python``. Its
dependencies are the ones already installed for the tests, made visible by a
``.pth`` line naming this interpreter's site-packages; a path added that way
does not run the ``.pth`` files inside it, so the editable install's import
hook stays out and only the wheel's ``loopgate`` can be imported. Nothing is
downloaded: the wheel is built without build isolation (setuptools comes with
the dev extra) and ``--no-index``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
from cli_server import clean_env

ROOT = Path(__file__).parents[2]
BUILD_TIMEOUT = 120


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        cwd=cwd,
        env=env,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def copy_what_the_dockerfile_copies(dest: Path) -> None:
    """Each ``COPY src... target`` line of the Dockerfile, with ``/app`` as ``dest``."""
    copies = 0
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0] != "COPY":
            continue
        *sources, target = words[1:]
        for source in sources:
            to = dest / target / source if target.endswith("/") else dest / target
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, to, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, to)
            copies += 1
    assert copies, "the Dockerfile copies nothing"


def shipped_files(src: Path) -> set[str]:
    """The files a wheel must hold, as paths inside it."""
    shipped = {
        path.relative_to(src).as_posix()
        for path in (src / "loopgate").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    shipped |= {
        "loopgate/_migrations/" + path.relative_to(src / "migrations").as_posix()
        for path in (src / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    return shipped


def source_versions(backend: str) -> list[int]:
    return sorted(int(path.name[:3]) for path in (ROOT / "migrations" / backend).glob("*.sql"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("image-sources")
    copy_what_the_dockerfile_copies(src)
    out = tmp_path_factory.mktemp("wheel")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--check-build-dependencies",
        "--wheel-dir",
        out,
        src,
        cwd=src,
    )
    (built,) = out.glob("loopgate-*.whl")
    with zipfile.ZipFile(built) as archive:
        missing = shipped_files(src) - set(archive.namelist())
    assert not missing, (
        f"the wheel lacks {sorted(missing)}: check packages and package-data in pyproject.toml"
    )
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    python = venv / "bin" / "python"
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=venv,
    )
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=venv)
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(purelib.strip()) / "test-dependencies.pth").write_text("\n".join(ours) + "\n")
    return venv


def installed_env() -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "LOOPGATE_LOG__FORMAT": "json"}


def test_the_venv_imports_loopgate_and_its_migrations_from_the_wheel(
    venv: Path, tmp_path: Path
) -> None:
    found = run(
        venv / "bin" / "python",
        "-c",
        "import json, loopgate, loopgate._migrations as m;"
        "print(json.dumps([loopgate.__file__, m.__file__]))",
        cwd=tmp_path,
        env=installed_env(),
    )
    for file in json.loads(found.strip().splitlines()[-1]):
        assert Path(file).is_relative_to(venv), file


async def applied_versions(url: str) -> list[int]:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            rows = db.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [row[0] for row in rows]
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [row["version"] for row in rows]
    finally:
        await conn.close()


def test_the_installed_loopgate_migrate_applies_every_migration(
    venv: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    backend = "sqlite" if fresh_database_url.startswith("sqlite") else "postgres"
    env = installed_env()

    output = run(
        venv / "bin" / "loopgate", "migrate", "--db", fresh_database_url, cwd=tmp_path, env=env
    )

    assert "migrations applied" in output
    assert asyncio.run(applied_versions(fresh_database_url)) == source_versions(backend)
    again = run(
        venv / "bin" / "loopgate", "migrate", "--db", fresh_database_url, cwd=tmp_path, env=env
    )
    assert "schema up to date" in again
