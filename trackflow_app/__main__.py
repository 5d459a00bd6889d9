"""Command line tools.

    python -m trackflow_app query "SELECT ..."
    python -m trackflow_app dlq show [--reason R] [--limit N]
    python -m trackflow_app dlq replay [--reason R] [--dry-run]


``query`` opens the store directly, so with the embedded chDB store it works only while no
worker holds it (stop the worker first, or read through the worker's HTTP API).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from schemas.records import DEAD_LETTER_REASONS
from trackflow_app import dlq
from trackflow_app.settings import load_settings
from trackflow_app.store import EventStore, StoreInUse


def _json_default(value: object) -> str:
    return str(value)


def run_query(sql: str) -> int:
    settings = load_settings()
    store = EventStore(settings.clickhouse_url, settings.clickhouse_table)
    try:
        rows = store.query_sync(sql)
    except StoreInUse as busy:
        sys.exit(
            f"TrackFlow: the embedded store {busy.folder} is open in {busy.holder} (a running "
            "worker): read through its HTTP API (/v1/query/..., /v1/stats/...) or stop it first"
        )
    for row in rows:
        sys.stdout.buffer.write(orjson.dumps(row, default=_json_default) + b"\n")
    return 0


def non_negative(text: str) -> int:
    number = int(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trackflow_app")
    commands = parser.add_subparsers(dest="command", required=True)
    query = commands.add_parser("query", help="run SQL against the store, print JSON lines")
    query.add_argument("sql")
    letters = commands.add_parser("dlq", help="inspect or replay the dead-letter topic")
    letters.add_argument("action", choices=["show", "replay"])
    letters.add_argument(
        "--reason",
        choices=DEAD_LETTER_REASONS,
        metavar="REASON",
        help=f"only letters with this reason, one of: {', '.join(DEAD_LETTER_REASONS)}",
    )
    letters.add_argument(
        "--limit", type=non_negative, default=100, help="show at most this many (default 100)"
    )
    letters.add_argument("--dry-run", action="store_true", help="count, send nothing")
    args = parser.parse_args(argv)
    if args.command == "query":
        return run_query(args.sql)
    settings = load_settings()
    if args.action == "show":
        return asyncio.run(dlq.show(settings, args.reason, args.limit))
    return asyncio.run(dlq.replay(settings, args.reason, args.dry_run))


if __name__ == "__main__":
    raise SystemExit(main())
