from __future__ import annotations

import threading
import time

from trackflow_app.shutdown import EXIT_STOP_TIMED_OUT, STOP_MARGIN_S, StopWatchdog, stop_limit_s


def test_stop_limit_is_the_flush_plus_the_margin() -> None:
    assert stop_limit_s(20.0) == 20.0 + STOP_MARGIN_S


def test_watchdog_releases_the_store_then_exits_once_however_often_armed() -> None:
    calls: list[str] = []
    exited = threading.Event()

    def exit_process(code: int) -> None:
        calls.append(f"exit {code}")
        exited.set()

    watchdog = StopWatchdog(0.05, lambda: calls.append("release"), exit_process)
    assert not watchdog.armed
    watchdog.arm()
    watchdog.arm()
    assert exited.wait(2.0)
    time.sleep(0.1)
    assert calls == ["release", f"exit {EXIT_STOP_TIMED_OUT}"]


def test_watchdog_exits_even_when_the_store_cannot_be_released() -> None:
    codes: list[int] = []
    exited = threading.Event()

    def release() -> None:
        raise RuntimeError("store thread busy")

    def exit_process(code: int) -> None:
        codes.append(code)
        exited.set()

    StopWatchdog(0.01, release, exit_process).arm()
    assert exited.wait(2.0)
    assert codes == [EXIT_STOP_TIMED_OUT] == [70]  # the status the README gives supervisors


def test_unarmed_watchdog_never_fires() -> None:
    fired: list[int] = []
    StopWatchdog(0.01, lambda: None, fired.append)
    time.sleep(0.1)
    assert fired == []
