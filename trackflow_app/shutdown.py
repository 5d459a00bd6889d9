"""A bound on how long a stopping worker may take, whatever Kafka and the store do.

The first stop signal arms a timer thread. A stop that finishes in time never sees it fire. A
stop that hangs (a broker that went away mid-shutdown can leave Faust's consumer thread dead and
the main thread waiting on it) ends when the timer fires: the store is closed if its thread is
free, one log line says what happened, and the process exits with ``EXIT_STOP_TIMED_OUT``.
Nothing is lost by that: the sink commits offsets only after an insert, so what it could not
store is read again from Kafka by the next worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# Time a stop gets beyond the sink's shutdown flush: stopping the agents and consumers before
# the flush, and closing the store and the event loop after it.
STOP_MARGIN_S = 10.0
# The exit status of a stop cut short (EX_SOFTWARE).
EXIT_STOP_TIMED_OUT = 70


def stop_limit_s(shutdown_flush_s: float) -> float:
    return shutdown_flush_s + STOP_MARGIN_S


class StopWatchdog:
    """Ends the process ``limit_s`` after ``arm()`` unless the process has exited by then."""

    def __init__(
        self,
        limit_s: float,
        release: Callable[[], None],
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.limit_s = limit_s
        self._release = release
        self._exit = exit_process
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self) -> None:
        """Start the countdown; later calls (a second signal) change nothing."""
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.limit_s, self._expire)
            self._timer.name = "stop-watchdog"
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        log.critical(
            "worker did not stop within %.1f s of the stop signal (TRACKFLOW_SINK_SHUTDOWN_FLUSH_S"
            " + %.0f s): exiting with status %d; rows not stored stay uncommitted in Kafka and "
            "are read again by the next worker",
            self.limit_s,
            STOP_MARGIN_S,
            EXIT_STOP_TIMED_OUT,
        )
        try:
            self._release()
        except Exception as exc:
            log.error("store not closed before exit: %r", exc)
        for stream in [*logging.getLogger().handlers, sys.stdout, sys.stderr]:
            with contextlib.suppress(Exception):
                stream.flush()
        self._exit(EXIT_STOP_TIMED_OUT)
