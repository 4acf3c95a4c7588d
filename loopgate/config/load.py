"""Load the config: defaults, then a TOML file, the environment and overrides.

Sources, lowest precedence first:

1. built-in defaults;
2. the TOML file (``./loopgate.toml`` when it exists, or an explicit path);
3. the reference server's variables: ``SERVER_PORT``, ``LOG_LEVEL``,
   ``REQUEST_TIMEOUT``, ``DB_ADAPTER`` + ``DB_URI``, ``STORAGE_ADAPTER`` +
   ``POSTGRES_DSN`` / ``SQLITE_DSN``, ``TELEGRAM_BOT_TOKEN``;
4. ``LOOPGATE_<SECTION>__<KEY>`` variables, e.g. ``LOOPGATE_SERVER__PORT``;
5. explicit overrides from the command line.

``LOOPGATE_`` names win over the reference's generic ones because names like
``SERVER_PORT`` are often set on PaaS hosts for unrelated reasons; for the same
reason a reference variable is only read, and only validated, when no
``LOOPGATE_`` variable or override sets that setting. An empty variable counts
as unset, since docker-compose expands a missing ``${VAR}`` to an empty string.

Every bad value raises ``ConfigError`` with a message meant for people: the
dotted name, what was expected, what was found and where it came from.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
from collections.abc import Container, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import quote, urlencode

import msgspec

from loopgate.config.derived import (
    DATABASE_SCHEMES,
    database_kind,
    decode_secrets_key,
    metrics_bind,
    sqlite_path,
)
from loopgate.config.settings import SECTIONS, SETTINGS, Setting
from loopgate.config.structs import Config, ConfigError

_BY_NAME = {setting.name: setting for setting in SETTINGS}

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS |= {"false": False, "no": False, "off": False, "0": False}
# The reference and many ops tools spell the level "warn".
_LITERAL_ALIASES = {"warn": "warning"}
_ADAPTERS: dict[str, str] = {**DATABASE_SCHEMES, "memory": "memory"}  # DB_ADAPTER words
_INVALID = object()
SAMPLE_JWT_SECRET_PREFIX = "change-me"
MIN_JWT_SECRET_CHARS = 32
_COMMAND_LINE = "the command line"


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the config from defaults, a TOML file, the environment and overrides.

    ``path=None`` reads ``./loopgate.toml`` if it exists; an explicit path must
    exist. ``env=None`` reads ``os.environ``. ``overrides`` maps dotted names
    (``"server.port"``) to typed values or strings; ``None`` values are ignored.
    Raises ``ConfigError`` on any unknown or invalid setting.
    """
    env = os.environ if env is None else env
    if path is None:
        default_path = Path("loopgate.toml")
        path = default_path if default_path.is_file() else None
    elif not Path(path).exists():
        raise ConfigError(f"config file not found: {path}")

    values: dict[str, Any] = {}
    if path is not None:
        values.update(_from_toml(Path(path)))
    explicit = _from_loopgate_env(env) | _from_overrides(overrides or {})
    values.update(_from_reference_env(env, skip=explicit.keys()))
    values.update(explicit)

    sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for name, value in values.items():
        section, key = name.split(".")
        sections[section][key] = value
    return msgspec.convert(sections, Config)


def _from_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        data = msgspec.toml.decode(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc.strerror or exc}") from None
    # tomllib lets UnicodeDecodeError through rather than wrapping it in DecodeError.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SECTIONS:
            known = ", ".join(f"[{name}]" for name in SECTIONS)
            raise ConfigError(f"unknown section [{section}] in {source} (known: {known})")
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: expected a table [{section}], got {table!r} in {source}")
        for key, raw in table.items():
            name = f"{section}.{key}"
            values[name] = _coerce(_lookup(name, f"in {source}"), raw, source)
    return values


def _from_loopgate_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var in sorted(env):
        # Names without "__" (LOOPGATE_TEST_DATABASE_URL) belong to tests and tools.
        if not var.startswith("LOOPGATE_") or "__" not in var:
            continue
        section, _, key = var.removeprefix("LOOPGATE_").lower().partition("__")
        setting = _lookup(f"{section}.{key}", f"(from {var})")
        if env[var].strip():
            values[setting.name] = _coerce(setting, env[var], var)
    return values


def _from_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _coerce(_lookup(name, f"(from {_COMMAND_LINE})"), raw, _COMMAND_LINE)
        for name, raw in overrides.items()
        if raw is not None
    }


def _from_reference_env(env: Mapping[str, str], skip: Container[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        # database.url's reference names combine an adapter with a DSN; see below.
        if setting.name in skip or setting.name == "database.url":
            continue
        found = _first_set(env, setting.env_aliases)
        if found is not None:
            values[setting.name] = _coerce(setting, found[0], found[1])
    if "database.url" not in skip:
        found = _reference_database_url(env)
        if found is not None:
            values["database.url"] = _coerce(_BY_NAME["database.url"], *found)
    return values


def _reference_database_url(env: Mapping[str, str]) -> tuple[str, str] | None:
    """Translate DB_ADAPTER/STORAGE_ADAPTER and their DSN into (url, variable)."""
    kind: str | None = None
    adapter = _first_set(env, ("DB_ADAPTER", "STORAGE_ADAPTER"))
    if adapter is not None:
        kind = _ADAPTERS.get(adapter[0].lower())
        if kind is None:
            raise ConfigError(
                f"database.url: unsupported {adapter[1]} {adapter[0]!r} "
                "(use postgres, sqlite or memory)"
            )
        if kind == "memory":
            return "sqlite:///:memory:", adapter[1]
    dsn_vars = {
        "postgres": ("DB_URI", "POSTGRES_DSN"),
        "sqlite": ("DB_URI", "SQLITE_DSN"),
    }.get(kind or "", ("DB_URI", "POSTGRES_DSN", "SQLITE_DSN"))
    found = _first_set(env, dsn_vars)
    if found is None:
        if kind == "postgres" and adapter is not None:
            raise ConfigError(f"database.url: {adapter[1]}=postgres needs DB_URI or POSTGRES_DSN")
        return None
    dsn, var = found
    if kind is None and var != "DB_URI":
        kind = "postgres" if var == "POSTGRES_DSN" else "sqlite"
    return _dsn_to_url(dsn, var, kind), var


def _dsn_to_url(dsn: str, var: str, kind: str | None) -> str:
    if dsn.startswith("file:"):
        return _sqlite_url(dsn.removeprefix("file:"))
    if "://" in dsn:
        return dsn
    if kind is None:
        kind = "postgres" if "=" in dsn else "sqlite"
    return _libpq_to_url(dsn, var) if kind == "postgres" else _sqlite_url(dsn)


def _sqlite_url(path: str) -> str:
    # Go SQLite drivers take "file:" URIs: file:x.db, file:///abs.db, file::memory:?cache=shared.
    path, _, query = path.partition("?")
    if path.startswith("///"):
        path = path[2:]
    if path in ("", ":memory:") or "mode=memory" in query:
        return "sqlite:///:memory:"
    return "sqlite:///" + path


_LIBPQ_PAIR = re.compile(r"\s*(\w+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)*))")


def _libpq_to_url(dsn: str, var: str) -> str:
    """Turn ``host=h port=5432 user=u password='p w' dbname=d`` into a postgresql:// URL."""
    params: dict[str, str] = {}
    dsn, pos = dsn.strip(), 0
    while pos < len(dsn):
        match = _LIBPQ_PAIR.match(dsn, pos)
        if match is None:
            # The DSN may hold a password, so it is not echoed.
            raise ConfigError(
                f"database.url: {var} is neither a postgresql:// URL "
                "nor a libpq key=value connection string"
            )
        raw = match[2] if match[2] is not None else match[3]
        params[match[1]] = re.sub(r"\\(.)", r"\1", raw)
        pos = match.end()
    user, password = params.pop("user", None), params.pop("password", None)
    host, port, dbname = params.pop("host", ""), params.pop("port", ""), params.pop("dbname", "")
    userinfo = ""
    if user is not None or password is not None:
        userinfo = quote(user or "", safe="")
        userinfo += f":{quote(password, safe='')}@" if password is not None else "@"
    if host.startswith("/"):  # a Unix socket directory cannot go in the authority part
        params["host"], host = host, ""
    elif ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = userinfo + host + (f":{port}" if port else "")
    # quote, not urlencode's default quote_plus: libpq reads "+" in a URL literally.
    query = f"?{urlencode(params, quote_via=quote)}" if params else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{query}"


def _first_set(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return None


def _lookup(name: str, where: str) -> Setting:
    setting = _BY_NAME.get(name)
    if setting is None:
        close = difflib.get_close_matches(name, _BY_NAME, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown setting '{name}' {where}{hint}")
    return setting


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    """Check ``raw`` against the setting's type, parsing strings from env or CLI."""
    tp = setting.type
    text = raw.strip() if isinstance(raw, str) else None
    value: Any = _INVALID
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        if isinstance(raw, bool):  # require_api_key = true, written as a TOML boolean
            text = "true" if raw else "false"
        if text is not None:
            word = _LITERAL_ALIASES.get(text.lower(), text.lower())
            if word not in choices and word in _BOOL_WORDS and "true" in choices:
                word = "true" if _BOOL_WORDS[word] else "false"
            value = word if word in choices else _INVALID
    elif tp is bool:
        if isinstance(raw, bool):
            value = raw
        elif text is not None:
            value = _BOOL_WORDS.get(text.lower(), _INVALID)
    elif tp is int or tp is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = raw
        elif text is not None:
            with contextlib.suppress(ValueError):
                value = tp(text)
        # An integer setting must not silently truncate 1.5; NaN/inf are never useful.
        if isinstance(value, float) and (tp is int or not math.isfinite(value)):
            value = _INVALID
        elif value is not _INVALID:
            value = tp(value)
    elif tp is str and text is not None:
        value = text
    if value is _INVALID:
        raise ConfigError(f"{setting.name}: expected {_describe(tp)}, got {raw!r} (from {source})")
    _check(setting, value, source)
    return value


def _check(setting: Setting, value: Any, source: str) -> None:
    low, high = setting.minimum, setting.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{setting.name}: must be {bound}, got {value!r} (from {source})")
    if setting.name == "auth.jwt_secret" and value:
        if value.lower().startswith(SAMPLE_JWT_SECRET_PREFIX):
            raise ConfigError(
                f"auth.jwt_secret: the placeholder {value!r} is not a secret; generate one with "
                f"python -c 'import secrets; print(secrets.token_urlsafe(32))' (from {source})"
            )
        if len(value) < MIN_JWT_SECRET_CHARS:
            # HS256 wants a key at least as long as its 32-byte hash (RFC 7518 §3.2).
            raise ConfigError(
                f"auth.jwt_secret: must be at least {MIN_JWT_SECRET_CHARS} characters, "
                f"got {len(value)} (from {source})"
            )
    if setting.name == "secrets.key" and value:
        try:
            decode_secrets_key(value.strip())
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {source})") from None
    if setting.name == "metrics.bind" and value:
        try:
            metrics_bind(value)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {source})") from None
    if setting.name == "database.url":
        try:
            if database_kind(value) == "sqlite":
                sqlite_path(value)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {source})") from None


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(tp))
    words = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return words.get(tp, str(tp))
