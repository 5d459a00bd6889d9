"""bench.insert_cost's pure parts: the line through (rows, CPU per insert), the rows' variants."""

import orjson
import pytest

from bench.insert_cost import (
    VARIANTS,
    fit_line,
    materialized_columns,
    skip_indexes,
    without_keys,
)


def test_the_line_gives_the_part_per_insert_and_the_part_per_row() -> None:
    intercept, slope = fit_line([(1, 12.01), (1800, 30.0), (3600, 48.0)])
    assert intercept == pytest.approx(12.0, abs=0.01)
    assert slope == pytest.approx(0.01, abs=1e-5)


def test_a_line_needs_two_sizes() -> None:
    with pytest.raises(ValueError):
        fit_line([(100, 1.0), (100, 2.0)])


def test_rows_for_a_table_without_properties_do_not_carry_them() -> None:
    line = orjson.dumps({"event_id": "e", "properties": {"a": 1}})
    assert orjson.loads(without_keys(line, ("properties",))) == {"event_id": "e"}
    _, dropped = VARIANTS["without properties and the columns computed from it"]
    assert dropped == ("properties",)


def test_the_pieces_come_from_the_table_s_own_ddl() -> None:
    ddl = (
        "CREATE TABLE t (\n"
        "    a String,\n"
        "    b UInt64 MATERIALIZED cityHash64(a),\n"
        "    INDEX idx_a (a) TYPE bloom_filter\n"
        ")"
    )
    assert materialized_columns(ddl) == ("b",)
    assert skip_indexes(ddl) == ("idx_a",)
