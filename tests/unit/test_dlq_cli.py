"""`python -m trackflow_app dlq` without a broker, or with bad arguments: a message naming the
problem, not a traceback."""

from __future__ import annotations

import pytest

from harness.stack import free_port
from tests.support.env import env_without_trackflow
from tests.support.processes import run_dlq
from trackflow_app.__main__ import main


@pytest.mark.parametrize("action", ["show", "replay"])
def test_no_broker_is_named_without_a_traceback(action: str) -> None:
    port = free_port()  # nothing listens there
    env = env_without_trackflow(TRACKFLOW_BROKER_URL=f"kafka://127.0.0.1:{port}")
    done = run_dlq(env, action)
    assert done.returncode == 1
    assert f"TrackFlow: no Kafka broker at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dlq", "show", "--reason", "missing-field"], "invalid choice: 'missing-field'"),
        (["dlq", "replay", "--reason", "nope"], "invalid choice: 'nope'"),
        (["dlq", "show", "--limit", "-1"], "must be 0 or more, got -1"),
        (["dlq", "show", "--limit", "ten"], "invalid non_negative value: 'ten'"),
    ],
)
def test_bad_dlq_arguments_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
