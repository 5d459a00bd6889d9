from __future__ import annotations

import logging
import sys

import orjson

from trackflow_app.logs import JsonFormatter, logging_config


def test_json_lines_carry_level_logger_message_and_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "trackflow.sink",
            logging.WARNING,
            __file__,
            1,
            "insert failed %s",
            ("x",),
            sys.exc_info(),
        )
    line = orjson.loads(JsonFormatter().format(record))
    assert line["level"] == "warning"
    assert line["logger"] == "trackflow.sink"
    assert line["message"] == "insert failed x"
    assert "ValueError: boom" in line["exception"]
    assert line["ts"].endswith("+00:00")


def test_text_format_keeps_fausts_own_config() -> None:
    assert logging_config("text", "info") is None
    config = logging_config("json", "warning")
    assert config is not None
    assert config["root"]["level"] == "WARNING"
