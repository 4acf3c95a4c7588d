from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from loopgate.channels.telegram.runtime import make_bot
from loopgate.config import (
    SETTINGS,
    Config,
    ConfigError,
    api_keys_required,
    database_kind,
    is_loopback,
    load_config,
    settings_markdown_table,
    sqlite_path,
    telegram_mode,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def load(env: dict[str, str] | None = None, **kwargs: Any) -> Config:
    """Load with an explicit environment so the test runner's variables don't leak in."""
    return load_config(env=env or {}, **kwargs)


def value(config: Config, name: str) -> Any:
    section, key = name.split(".")
    struct = getattr(config, section)
    field = {f.encode_name: f.name for f in msgspec.structs.fields(struct)}[key]
    return getattr(struct, field)


def write(tmp_path: Path, text: str, name: str = "loopgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_config reads ./loopgate.toml by default; keep the repo's own out of it.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


# --- the settings table and its documentation --------------------------------------------


def test_struct_defaults_equal_settings_defaults() -> None:
    defaults = Config()
    for setting in SETTINGS:
        assert value(defaults, setting.name) == setting.default, setting.name


def test_every_struct_field_has_exactly_one_setting() -> None:
    fields = {
        f"{section.name}.{field.encode_name}"
        for section in msgspec.structs.fields(Config)
        for field in msgspec.structs.fields(section.type)
    }
    names = [setting.name for setting in SETTINGS]
    assert sorted(names) == sorted(fields)
    assert len(names) == len(set(names))


def test_every_setting_has_help() -> None:
    for setting in SETTINGS:
        assert setting.help.strip(), setting.name


def test_example_file_sets_every_setting_explicitly() -> None:
    data = msgspec.toml.decode(EXAMPLE.read_bytes())
    for setting in SETTINGS:
        section, key = setting.name.split(".")
        assert key in data.get(section, {}), f"{setting.name} missing from config.example.toml"


def test_example_file_carries_every_help_text_as_a_comment() -> None:
    comments = " ".join(
        line.strip().removeprefix("#").strip()
        for line in EXAMPLE.read_text().splitlines()
        if line.strip().startswith("#")
    )
    for setting in SETTINGS:
        assert " ".join(setting.help.split()) in comments, setting.name


def test_example_file_loads_and_equals_the_defaults() -> None:
    assert load(path=EXAMPLE) == Config()


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [setting.name for setting in SETTINGS if setting.name not in readme]
    assert not missing, f"README.md does not mention {missing}; paste settings_markdown_table()"


def test_markdown_table_has_a_row_per_setting_with_its_env_names() -> None:
    rows = settings_markdown_table().splitlines()
    assert len(rows) == 2 + len(SETTINGS)
    for setting, row in zip(SETTINGS, rows[2:], strict=True):
        assert row.startswith(f"| `{setting.name}` |")
        assert setting.env_var in row
        assert all(alias in row for alias in setting.env_aliases)
    assert "`LOOPGATE_SERVER__PORT`, `SERVER_PORT`" in rows[3]


# --- sources and precedence --------------------------------------------------------------


def test_defaults_apply_without_a_file_or_environment() -> None:
    assert load() == Config()


def test_reads_loopgate_toml_from_the_working_directory() -> None:
    write(Path.cwd(), "[server]\nport = 9001\n")
    assert load().server.port == 9001


def test_converts_loopgate_env_strings_to_each_setting_type() -> None:
    config = load(
        {
            "LOOPGATE_SERVER__PORT": "9000",
            "LOOPGATE_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "2.5",
            "LOOPGATE_DATABASE__MIGRATE_ON_START": "no",
            "LOOPGATE_LOG__FORMAT": "JSON",
            "LOOPGATE_REQUESTS__MAX_BODY_BYTES": " 2048 ",
        }
    )
    assert config.server.port == 9000
    assert config.server.shutdown_timeout_seconds == 2.5
    assert config.database.migrate_on_start is False
    assert config.log.format == "json"
    assert config.requests.max_body_bytes == 2048


@pytest.mark.parametrize(
    ("word", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_accepts_common_boolean_words(word: str, expected: bool) -> None:
    config = load({"LOOPGATE_DATABASE__MIGRATE_ON_START": word})
    assert config.database.migrate_on_start is expected


@pytest.mark.parametrize(
    ("word", "level"), [("INFO", "info"), ("warn", "warning"), ("Error", "error")]
)
def test_reference_log_level_spellings_are_normalised(word: str, level: str) -> None:
    assert load({"LOG_LEVEL": word}).log.level == level


def test_reads_the_reference_server_port_and_timeout() -> None:
    config = load({"SERVER_PORT": "9100", "REQUEST_TIMEOUT": "60"})
    assert config.server.port == 9100
    assert config.requests.default_timeout_seconds == 60


def test_ignores_reference_settings_loopgate_does_not_have_yet() -> None:
    # TELEGRAM_BOT_TOKEN used to be here; it is telegram.bot_token's alias now.
    assert load({"MAX_CONCURRENT_REQUESTS": "100"}) == Config()


def test_ignores_loopgate_variables_without_a_double_underscore() -> None:
    env = {"LOOPGATE_TEST_DATABASE_URL": "postgresql://x@y/z", "LOOPGATE_HOME": "/tmp"}
    assert load(env) == Config()


def test_treats_empty_variables_as_unset() -> None:
    assert load({"LOOPGATE_SERVER__PORT": "", "SERVER_PORT": " "}) == Config()


def test_each_source_overrides_the_ones_below_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 1001\n")
    env = {"SERVER_PORT": "1002", "LOOPGATE_SERVER__PORT": "1003"}
    assert load(path=path).server.port == 1001
    assert load({"SERVER_PORT": "1002"}, path=path).server.port == 1002
    assert load(env, path=path).server.port == 1003
    assert load(env, path=path, overrides={"server.port": 1004}).server.port == 1004
    assert load(env, path=path, overrides={"server.port": "1005"}).server.port == 1005


def test_none_overrides_are_ignored() -> None:
    assert load({"SERVER_PORT": "1002"}, overrides={"server.port": None}).server.port == 1002


def test_reference_variable_is_not_validated_when_a_loopgate_one_wins() -> None:
    # PaaS hosts set SERVER_PORT and friends for their own reasons.
    env = {"SERVER_PORT": "http", "LOOPGATE_SERVER__PORT": "8081"}
    assert load(env).server.port == 8081


def test_settings_not_mentioned_keep_lower_layers(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhost = "0.0.0.0"\n')
    config = load({"LOOPGATE_SERVER__PORT": "9000"}, path=path)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9000)


def test_reads_os_environ_when_env_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPGATE_SERVER__PORT", "9200")
    assert load_config().server.port == 9200


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Config().server.port = 1  # type: ignore[misc]


# --- error messages ----------------------------------------------------------------------


def errors(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(**kwargs)
    return str(info.value)


def test_names_key_type_value_and_variable_for_a_bad_env_value() -> None:
    message = errors(env={"LOOPGATE_SERVER__PORT": "abc"})
    assert message == "server.port: expected an integer, got 'abc' (from LOOPGATE_SERVER__PORT)"


def test_names_the_reference_variable_for_its_bad_value() -> None:
    message = errors(env={"REQUEST_TIMEOUT": "5m"})
    assert "requests.default_timeout_seconds: expected an integer, got '5m'" in message
    assert "(from REQUEST_TIMEOUT)" in message


def test_lists_the_choices_for_a_bad_literal() -> None:
    message = errors(env={"LOG_LEVEL": "loud"})
    assert "log.level: expected one of 'debug', 'info', 'warning', 'error'" in message


def test_describes_booleans_and_numbers_in_words(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nmigrate_on_start = 1\n")
    assert "expected a boolean, got 1 (from " in errors(path=path)
    path = write(tmp_path, '[server]\nshutdown_timeout_seconds = "soon"\n')
    assert "server.shutdown_timeout_seconds: expected a number" in errors(path=path)


def test_refuses_fractional_and_boolean_integers(tmp_path: Path) -> None:
    assert "expected an integer, got 1.5" in errors(overrides={"server.port": 1.5})
    assert "expected an integer, got True" in errors(overrides={"server.port": True})


def test_names_the_command_line_for_a_bad_override() -> None:
    message = errors(overrides={"server.port": "x"})
    assert message == "server.port: expected an integer, got 'x' (from the command line)"


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("server.port", 0, "server.port: must be between 1 and 65535, got 0"),
        ("server.port", 70000, "server.port: must be between 1 and 65535, got 70000"),
        ("requests.max_body_bytes", 1023, "requests.max_body_bytes: must be at least 1024"),
        ("requests.default_timeout_seconds", -1, "must be at least 0, got -1"),
        ("server.shutdown_timeout_seconds", -0.5, "must be at least 0, got -0.5"),
    ],
)
def test_refuses_values_out_of_range(name: str, raw: Any, expected: str) -> None:
    assert expected in errors(overrides={name: raw})


def test_zero_timeouts_are_allowed() -> None:
    config = load(
        overrides={"requests.default_timeout_seconds": 0, "server.shutdown_timeout_seconds": 0}
    )
    assert config.requests.default_timeout_seconds == 0
    assert config.server.shutdown_timeout_seconds == 0.0


def test_refuses_unknown_loopgate_variables_that_look_like_settings() -> None:
    message = errors(env={"LOOPGATE_SERVER__PROT": "1"})
    assert message == (
        "unknown setting 'server.prot' (from LOOPGATE_SERVER__PROT) (did you mean 'server.port'?)"
    )
    assert "unknown setting 'foo.bar'" in errors(env={"LOOPGATE_FOO__BAR": "1"})


def test_refuses_unknown_override_names() -> None:
    assert "unknown setting 'server.nope'" in errors(overrides={"server.nope": 1})


def test_refuses_unknown_keys_in_the_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 8080\n")
    assert errors(path=path).startswith(f"unknown setting 'server.prot' in {path}")


def test_names_the_default_file_as_the_user_wrote_it() -> None:
    write(Path.cwd(), "[server]\nprot = 8080\n")
    assert errors().startswith("unknown setting 'server.prot' in loopgate.toml")


def test_refuses_unknown_sections_in_the_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[sever]\nport = 8080\n")
    assert "unknown section [sever]" in errors(path=path)
    path = write(tmp_path, "port = 8080\n")
    assert "unknown section [port]" in errors(path=path)


def test_names_the_file_and_line_for_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nport = 1\n", name="broken.toml")
    message = errors(path=path)
    assert message.startswith(f"{path}: invalid TOML:")
    assert "line 1" in message


def test_names_the_file_for_toml_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    assert errors(path=path).startswith(f"{path}: invalid TOML:")


def test_refuses_an_explicit_file_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    assert errors(path=path) == f"config file not found: {path}"


# --- databases ---------------------------------------------------------------------------


def test_refuses_unsupported_database_urls() -> None:
    message = errors(env={"LOOPGATE_DATABASE__URL": "mysql://root:secret@localhost/db"})
    assert message.startswith(
        "database.url: unsupported database 'mysql' "
        "(use sqlite:///path/to/file.db or postgresql://user@host/db)"
    )
    assert "secret" not in message


def test_refuses_a_database_url_without_a_scheme() -> None:
    assert "database.url: expected a URL" in errors(overrides={"database.url": "./x.db"})


def test_refuses_a_sqlite_url_with_two_slashes() -> None:
    assert "sqlite:///relative.db" in errors(overrides={"database.url": "sqlite://x.db"})


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///x.db", "sqlite"),
        ("postgresql://u@h/d", "postgres"),
        ("postgres://u@h/d", "postgres"),
        ("PostgreSQL://u@h/d", "postgres"),
    ],
)
def test_database_kind_reads_the_scheme(url: str, kind: str) -> None:
    assert database_kind(url) == kind


def test_database_kind_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        database_kind("mysql://h/d")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./loopgate.db", "./loopgate.db"),
        ("sqlite:///loopgate.db", "loopgate.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_path_strips_the_scheme(url: str, path: str) -> None:
    assert sqlite_path(url) == path


def test_converts_the_reference_readme_libpq_dsn_to_a_url() -> None:
    env = {
        "DB_ADAPTER": "postgres",
        "DB_URI": "host=localhost port=5432 user=loopgate password=loopgate "
        "dbname=loopgate sslmode=disable",
    }
    assert load(env).database.url == (
        "postgresql://loopgate:loopgate@localhost:5432/loopgate?sslmode=disable"
    )


def test_libpq_conversion_quotes_and_percent_encodes() -> None:
    env = {
        "DB_ADAPTER": "postgresql",
        "DB_URI": r"user='a b' password='p@ss:w/o\'rd' host = db.internal dbname=app",
    }
    assert load(env).database.url == "postgresql://a%20b:p%40ss%3Aw%2Fo%27rd@db.internal/app"


def test_libpq_socket_directory_goes_in_the_query() -> None:
    env = {"DB_ADAPTER": "postgres", "DB_URI": "host=/var/run/postgresql dbname=app"}
    assert load(env).database.url == "postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql"


def test_refuses_an_unparseable_libpq_dsn_without_echoing_it() -> None:
    message = errors(env={"DB_ADAPTER": "postgres", "DB_URI": "password=hunter2 garbage"})
    assert "DB_URI is neither a postgresql:// URL nor a libpq" in message
    assert "hunter2" not in message


def test_passes_a_postgres_url_dsn_through() -> None:
    env = {"STORAGE_ADAPTER": "postgres", "POSTGRES_DSN": "postgres://u:p@h:5433/d"}
    assert load(env).database.url == "postgres://u:p@h:5433/d"


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"DB_ADAPTER": "sqlite", "DB_URI": "./x.db"}, "sqlite:///./x.db"),
        ({"DB_ADAPTER": "sqlite", "DB_URI": "/data/x.db"}, "sqlite:////data/x.db"),
        ({"DB_ADAPTER": "sqlite", "DB_URI": "file:x.db"}, "sqlite:///x.db"),
        ({"DB_ADAPTER": "sqlite", "DB_URI": "file:x.db?cache=shared"}, "sqlite:///x.db"),
        ({"DB_ADAPTER": "sqlite", "DB_URI": "sqlite:///x.db"}, "sqlite:///x.db"),
        ({"STORAGE_ADAPTER": "sqlite", "SQLITE_DSN": "y.db"}, "sqlite:///y.db"),
        ({"DB_ADAPTER": "sqlite"}, "sqlite:///./loopgate.db"),
        ({"DB_ADAPTER": "memory", "DB_URI": "ignored.db"}, "sqlite:///:memory:"),
        ({"DB_ADAPTER": "sqlite", "DB_URI": "file::memory:?cache=shared"}, "sqlite:///:memory:"),
        ({"DB_URI": "host=h dbname=d"}, "postgresql://h/d"),
        ({"DB_URI": "./z.db"}, "sqlite:///./z.db"),
        ({"POSTGRES_DSN": "dbname=d"}, "postgresql:///d"),
    ],
)
def test_translates_reference_database_variables(env: dict[str, str], url: str) -> None:
    assert load(env).database.url == url


def test_refuses_an_unknown_db_adapter() -> None:
    message = errors(env={"DB_ADAPTER": "mongo"})
    assert message == (
        "database.url: unsupported DB_ADAPTER 'mongo' (use postgres, sqlite or memory)"
    )


def test_refuses_a_postgres_adapter_without_a_dsn() -> None:
    assert "DB_ADAPTER=postgres needs DB_URI or POSTGRES_DSN" in errors(
        env={"DB_ADAPTER": "postgres"}
    )


def test_loopgate_database_url_wins_over_a_broken_reference_adapter() -> None:
    env = {"DB_ADAPTER": "mongo", "LOOPGATE_DATABASE__URL": "sqlite:///:memory:"}
    assert load(env).database.url == "sqlite:///:memory:"


def test_database_errors_name_their_source() -> None:
    message = errors(env={"DB_ADAPTER": "postgres", "DB_URI": "mysql://h/d"})
    assert re.search(r"unsupported database 'mysql'.*\(from DB_URI\)$", message)


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("setting", "host", "required"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "0.0.0.0", True),
        ("true", "127.0.0.1", True),
        ("false", "0.0.0.0", False),
    ],
)
def test_require_api_key_auto_means_required_off_loopback(
    setting: str, host: str, required: bool
) -> None:
    config = load({"LOOPGATE_AUTH__REQUIRE_API_KEY": setting, "LOOPGATE_SERVER__HOST": host})
    assert api_keys_required(config) is required


@pytest.mark.parametrize(("word", "value"), [("true", "true"), ("YES", "true"), ("0", "false")])
def test_require_api_key_takes_boolean_words_from_the_environment(word: str, value: str) -> None:
    assert load({"LOOPGATE_AUTH__REQUIRE_API_KEY": word}).auth.require_api_key == value


def test_require_api_key_takes_a_toml_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, "[auth]\nrequire_api_key = true\n")
    assert load(path=path).auth.require_api_key == "true"
    path = write(tmp_path, "[auth]\nrequire_api_key = false\n")
    assert load(path=path).auth.require_api_key == "false"


def test_require_api_key_refuses_other_words() -> None:
    with pytest.raises(ConfigError, match=r"auth\.require_api_key: expected one of 'auto'"):
        load({"LOOPGATE_AUTH__REQUIRE_API_KEY": "maybe"})


def test_registration_is_open_or_closed() -> None:
    assert load({"LOOPGATE_AUTH__REGISTRATION": "Closed"}).auth.registration == "closed"
    with pytest.raises(ConfigError, match=r"auth\.registration"):
        load({"LOOPGATE_AUTH__REGISTRATION": "invite-only"})


def test_a_short_jwt_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret: must be at least 32") as info:
        load({"LOOPGATE_AUTH__JWT_SECRET": "hunter2"})
    assert "hunter2" not in str(info.value)


def test_the_placeholder_jwt_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret: the placeholder"):
        load({"LOOPGATE_AUTH__JWT_SECRET": "change-me-to-a-long-random-string-0123456789"})


def test_token_lifetime_has_a_floor() -> None:
    assert load({"LOOPGATE_AUTH__TOKEN_TTL_SECONDS": "3600"}).auth.token_ttl_seconds == 3600
    with pytest.raises(ConfigError, match=r"auth\.token_ttl_seconds: must be at least 60"):
        load({"LOOPGATE_AUTH__TOKEN_TTL_SECONDS": "5"})


# --- telegram ------------------------------------------------------------------------------

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
SECRET = "s3cret_value-OK"


def telegram(env: dict[str, str]) -> str:
    return telegram_mode(load(env))


def telegram_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        telegram_mode(load(env))
    return str(info.value)


def test_telegram_is_off_by_default() -> None:
    assert load().telegram.mode == "auto"
    assert telegram({}) == "off"


def test_telegram_auto_without_a_token_is_off_even_with_a_webhook_url() -> None:
    assert telegram({"LOOPGATE_TELEGRAM__WEBHOOK_URL": "https://x.example/telegram/webhook"}) == (
        "off"
    )


def test_telegram_auto_with_a_token_and_a_webhook_url_is_webhook() -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "LOOPGATE_TELEGRAM__WEBHOOK_URL": "https://x.example/telegram/webhook",
        "LOOPGATE_TELEGRAM__WEBHOOK_SECRET": SECRET,
    }
    assert telegram(env) == "webhook"


def test_telegram_auto_with_only_a_token_is_polling() -> None:
    assert telegram({"TELEGRAM_BOT_TOKEN": TOKEN}) == "polling"


def test_telegram_explicitly_off_stays_off_with_a_token() -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "LOOPGATE_TELEGRAM__MODE": "off"}
    assert telegram(env) == "off"


def test_telegram_mode_polling_from_the_environment() -> None:
    env = {"LOOPGATE_TELEGRAM__BOT_TOKEN": TOKEN, "LOOPGATE_TELEGRAM__MODE": "POLLING"}
    assert load(env).telegram.mode == "polling"
    assert telegram(env) == "polling"


def test_telegram_explicit_webhook_without_a_url_is_allowed() -> None:
    # The webhook may have been registered some other way; the secret is still required.
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "LOOPGATE_TELEGRAM__MODE": "webhook",
        "LOOPGATE_TELEGRAM__WEBHOOK_SECRET": SECRET,
    }
    assert telegram(env) == "webhook"


@pytest.mark.parametrize("mode", ["webhook", "polling"])
def test_telegram_explicit_modes_need_a_token(mode: str) -> None:
    message = telegram_error({"LOOPGATE_TELEGRAM__MODE": mode})
    assert message.startswith("telegram.bot_token: required in " + mode)
    assert "TELEGRAM_BOT_TOKEN" in message


@pytest.mark.parametrize("secret", ["", "has space", "a" * 257, "dot.ted", "ünï"])
def test_telegram_webhook_needs_a_valid_secret(secret: str) -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "LOOPGATE_TELEGRAM__WEBHOOK_URL": "https://x.example/telegram/webhook",
    }
    if secret:
        env["LOOPGATE_TELEGRAM__WEBHOOK_SECRET"] = secret
    message = telegram_error(env)
    assert message.startswith("telegram.webhook_secret: required in webhook mode")
    if secret:
        assert secret not in message


def test_telegram_webhook_secret_may_be_256_characters() -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "LOOPGATE_TELEGRAM__MODE": "webhook",
        "LOOPGATE_TELEGRAM__WEBHOOK_SECRET": "a" * 256,
    }
    assert telegram(env) == "webhook"


def test_telegram_polling_does_not_need_a_webhook_secret() -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "LOOPGATE_TELEGRAM__WEBHOOK_SECRET": "has space"}
    assert telegram(env) == "polling"


def test_telegram_bot_token_env_alias_sets_the_token() -> None:
    assert load({"TELEGRAM_BOT_TOKEN": TOKEN}).telegram.bot_token == TOKEN


def test_loopgate_telegram_token_wins_over_the_alias() -> None:
    config = load({"TELEGRAM_BOT_TOKEN": "1:alias", "LOOPGATE_TELEGRAM__BOT_TOKEN": TOKEN})
    assert config.telegram.bot_token == TOKEN


def test_telegram_mode_refuses_other_words() -> None:
    with pytest.raises(ConfigError, match=r"telegram\.mode: expected one of 'auto', 'webhook'"):
        load({"LOOPGATE_TELEGRAM__MODE": "push"})


def test_telegram_mode_does_not_take_boolean_words_for_off() -> None:
    # "off" is a mode, not the boolean; "false" and "no" are not modes.
    with pytest.raises(ConfigError, match=r"telegram\.mode"):
        load({"LOOPGATE_TELEGRAM__MODE": "false"})


def test_telegram_delivery_attempts_are_bounded() -> None:
    assert load({"LOOPGATE_TELEGRAM__DELIVERY_ATTEMPTS": "3"}).telegram.delivery_attempts == 3
    with pytest.raises(ConfigError, match=r"telegram\.delivery_attempts: must be between 1"):
        load({"LOOPGATE_TELEGRAM__DELIVERY_ATTEMPTS": "0"})


def test_make_bot_refuses_a_malformed_token() -> None:
    config = load({"TELEGRAM_BOT_TOKEN": "not-a-token"})
    with pytest.raises(ConfigError, match=r"^telegram\.bot_token: not a bot token") as info:
        make_bot(config.telegram)
    assert "not-a-token" not in str(info.value)


async def test_make_bot_accepts_a_well_formed_token() -> None:
    bot = make_bot(load({"TELEGRAM_BOT_TOKEN": TOKEN}).telegram)
    try:
        assert bot.token == TOKEN
        assert bot.id == 123456
    finally:
        await bot.session.close()
