"""trackflow_app.settings: TRACKFLOW_* environment parsing."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.env import clear_trackflow_env, env_without_trackflow
from trackflow_app.settings import DEFAULT_STORE, Settings, faust_overrides, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_trackflow_env(monkeypatch)


def test_defaults() -> None:
    settings = Settings()
    assert settings.tenant_keys == frozenset()
    assert settings.read_secrets == {}
    assert settings.trusted_proxy_networks == ()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.max_events_per_batch == 500
    assert settings.skew_tolerance_ms == 60_000


def test_api_keys_with_spaces_and_empty_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_API_KEYS", " key-a , key-b,,key-c ,  ")
    assert Settings().tenant_keys == frozenset({"key-a", "key-b", "key-c"})


def test_blank_api_keys_means_no_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_API_KEYS", "  ,  ")
    assert Settings().tenant_keys == frozenset()


def test_read_keys_map_secret_to_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_READ_KEYS", " acme : s3cret , beta:pa:ss")
    assert Settings().read_secrets == {"s3cret": "acme", "pa:ss": "beta"}
    monkeypatch.setenv("TRACKFLOW_READ_KEYS", "acme:s3cret,gamma:")
    with pytest.raises(ValidationError, match="tenant:secret"):
        Settings()


def test_read_key_without_colon_fails_at_load_not_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKFLOW_READ_KEYS", "acme:good,acme-without-secret")
    with pytest.raises(ValidationError, match="acme-without-secret"):
        Settings()


def test_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,fd00::/8,10.1.2.3/16")
    assert Settings().trusted_proxy_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("10.1.0.0/16"),
    )


def test_bad_trusted_proxy_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")
    with pytest.raises(ValueError):
        _ = Settings().trusted_proxy_networks


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kafka://h1:1;h2:2", "h1:1,h2:2"),
        ("kafka://h1:1;kafka://h2:2", "h1:1,h2:2"),
        ("kafka://broker:9092/", "broker:9092"),
        ("h1:1, h2:2", "h1:1,h2:2"),
        ("kafka://h1:1; h2:2 ;", "h1:1,h2:2"),
    ],
)
def test_kafka_bootstrap(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("TRACKFLOW_BROKER_URL", url)
    assert Settings().kafka_bootstrap == expected


def test_numbers_parsed_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_MAX_EVENTS_PER_BATCH", "25")
    monkeypatch.setenv("TRACKFLOW_SINK_WINDOW_S", "1.5")
    monkeypatch.setenv("TRACKFLOW_RETENTION_DAYS", "30")
    monkeypatch.setenv("TRACKFLOW_PRODUCER_LINGER_MS", "20")
    settings = Settings()
    assert (
        settings.max_events_per_batch,
        settings.sink_window_s,
        settings.retention_days,
        settings.producer_linger_ms,
    ) == (25, 1.5, 30, 20)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRACKFLOW_MAX_EVENTS_PER_BATCH", "0"),
        ("TRACKFLOW_MAX_EVENTS_PER_BATCH", "many"),
        ("TRACKFLOW_MAX_BODY_BYTES", "100"),
        ("TRACKFLOW_SINK_WINDOW_S", "0"),
        ("TRACKFLOW_RAW_PARTITIONS", "-1"),
        ("TRACKFLOW_PRODUCER_LINGER_MS", "-5"),
    ],
)
def test_invalid_numbers_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.api_keys = "x"  # type: ignore[misc]


def test_only_a_worker_with_the_sink_opens_an_embedded_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().sink_enabled is True
    assert Settings().store_on_this_worker is True
    monkeypatch.setenv("TRACKFLOW_SINK_ENABLED", "false")
    assert Settings().store_on_this_worker is False  # chDB: one process per store
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_URL", "https://clickhouse.example:8443")
    assert Settings().store_on_this_worker is True  # a server takes many clients


def test_min_insync_replicas_follow_the_replication_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    from trackflow_app.topics import topic_specs

    assert Settings().min_isr == 1
    monkeypatch.setenv("TRACKFLOW_REPLICATION_FACTOR", "3")
    settings = Settings()
    assert settings.min_isr == 2
    assert {spec.topic_configs["min.insync.replicas"] for spec in topic_specs(settings)} == {"2"}
    assert {spec.replication_factor for spec in topic_specs(settings)} == {3}
    monkeypatch.setenv("TRACKFLOW_MIN_INSYNC_REPLICAS", "3")
    assert Settings().min_isr == 3
    monkeypatch.setenv("TRACKFLOW_MIN_INSYNC_REPLICAS", "4")
    with pytest.raises(ValidationError, match="exceeds TRACKFLOW_REPLICATION_FACTOR"):
        Settings()


def test_rate_limit_scope_is_group_or_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().rate_limit_scope == "group"
    monkeypatch.setenv("TRACKFLOW_RATE_LIMIT_SCOPE", "cluster")
    with pytest.raises(ValidationError):
        Settings()


def test_a_value_that_is_not_valid_ends_the_process_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKFLOW_WEB_PORT", "http")
    monkeypatch.setenv("TRACKFLOW_PRODUCER_COMPRESSION", "brotli")
    monkeypatch.setenv("TRACKFLOW_READ_KEYS", "acme:s3cret,beta-s3cret")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert str(stopped.value).splitlines() == [
        "TrackFlow: TRACKFLOW_WEB_PORT is not valid: Input should be a valid integer, unable to "
        "parse string as an integer",
        "TrackFlow: TRACKFLOW_READ_KEYS is not valid: entry 2 of TRACKFLOW_READ_KEYS must be "
        "tenant:secret (comma-separated pairs)",
        "TrackFlow: TRACKFLOW_PRODUCER_COMPRESSION is not valid: Input should be 'none', 'gzip', "
        "'lz4', 'zstd' or 'snappy'",
    ]
    assert "s3cret" not in str(stopped.value)


def test_a_check_across_settings_is_reported_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKFLOW_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("TRACKFLOW_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert str(stopped.value) == (
        "TrackFlow: TRACKFLOW_MIN_INSYNC_REPLICAS=2 exceeds TRACKFLOW_REPLICATION_FACTOR=1: "
        "no write could succeed"
    )


def test_existing_topics_with_other_partition_counts_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trackflow_app.topics import partition_mismatches

    monkeypatch.setenv("TRACKFLOW_RAW_PARTITIONS", "12")
    settings = Settings()
    assert partition_mismatches(settings, {}) == []  # new topics get the configured counts
    assert (
        partition_mismatches(
            settings, {"trackflow-raw": 12, "trackflow-processed": 4, "trackflow-dead-letter": 1}
        )
        == []
    )
    assert partition_mismatches(
        settings, {"trackflow-raw": 4, "trackflow-processed": 6, "trackflow-dead-letter": 1}
    ) == [
        "topic trackflow-raw has 4 partitions, TRACKFLOW_RAW_PARTITIONS=12: it keeps 4 (at most "
        "4 workers share its stage); raise it with kafka-topics.sh --alter --topic trackflow-raw "
        "--partitions 12",
        "topic trackflow-processed has 6 partitions, TRACKFLOW_PROCESSED_PARTITIONS=4: it keeps "
        "6 (at most 6 workers share its stage); Kafka cannot remove partitions, so set "
        "TRACKFLOW_PROCESSED_PARTITIONS=6",
    ]


@pytest.mark.parametrize("url", ["chdb:///srv/trackflow/store", "https://u:p@ch:8443/analytics"])
def test_a_store_url_of_either_kind_is_taken(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_URL", url)
    assert Settings().clickhouse_url == url


def test_a_relative_embedded_store_is_refused_with_the_absolute_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_URL", "chdb://var/clickhouse")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert str(stopped.value) == (
        "TrackFlow: TRACKFLOW_CLICKHOUSE_URL is not valid: an embedded store is named by its "
        f"absolute folder after three slashes, e.g. chdb://{tmp_path}/var/clickhouse for "
        "var/clickhouse in the current folder"
    )


@pytest.mark.parametrize("url", ["ch.example:8123", "tcp://default:pw@ch:9000/db"])
def test_a_store_url_of_no_known_kind_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_URL", url)
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert str(stopped.value) == (
        "TrackFlow: TRACKFLOW_CLICKHOUSE_URL is not valid: must be chdb:///absolute/folder "
        "(embedded) or http(s)://host:port/database"
    )


def readme_settings_table() -> dict[str, str]:
    """Variable -> its default as README's Configuration table writes it."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    rows = re.findall(r"^\| `(TRACKFLOW_[A-Z0-9_]+)` \| ([^|]*) \|", readme.read_text(), re.M)
    return dict(rows)


def documented_default(cell: str) -> str:
    """The value a default cell names: its first `...` span, or "" for empty."""
    if cell.startswith("empty"):
        return ""
    value = re.match(r"`([^`]*)`", cell)
    assert value, f"README default {cell!r} names no value"
    return value.group(1).replace("<working directory>", str(Path.cwd()))


def as_documented(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    # The settings' module docstring promises this; nothing else checks it.
    documented = readme_settings_table()
    variables = {f"TRACKFLOW_{name.upper()}": name for name in Settings.model_fields}
    assert set(documented) == set(variables), (
        f"not in README: {sorted(set(variables) - set(documented))}, "
        f"not a setting: {sorted(set(documented) - set(variables))}"
    )
    assert Path.cwd() / "var" / "clickhouse" == DEFAULT_STORE  # <working directory> below
    wrong = {}
    for variable, name in variables.items():
        default = Settings.model_fields[name].get_default(call_default_factory=True)
        if documented_default(documented[variable]) != as_documented(default):
            wrong[variable] = (documented[variable], default)
    assert not wrong, f"README defaults that differ from the code's: {wrong}"


def test_a_variable_for_a_faust_setting_trackflow_sets_is_refused() -> None:
    passed = ["broker", "producer_acks", "web_port", "stream_buffer_maxsize"]
    environ = {
        "TRACKFLOW_PRODUCER_ACKS": "1",
        "TRACKFLOW_WEB_PORT": "7000",  # TrackFlow's own setting: Faust reads the same value
        "TRACKFLOW_CONSUMER_MAX_FETCH_SIZE": "1048576",  # a Faust setting TrackFlow leaves alone
    }
    [line] = faust_overrides(passed, environ)
    assert line.startswith("TrackFlow: TRACKFLOW_PRODUCER_ACKS would change Faust's producer_acks")
    assert faust_overrides(passed, {"TRACKFLOW_WEB_PORT": "7000"}) == []


def test_the_worker_does_not_start_with_acks_overridden(tmp_path: Path) -> None:
    env = env_without_trackflow(TRACKFLOW_PRODUCER_ACKS="1")
    done = subprocess.run(
        [sys.executable, "-c", "import trackflow_app.app"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "TRACKFLOW_PRODUCER_ACKS would change Faust's producer_acks" in done.stderr
    assert "Traceback" not in done.stderr
