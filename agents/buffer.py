"""The sink's buffer: records plus the Kafka offsets to commit once they are stored. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import TopicPartition


@dataclass
class SinkBuffer:
    max_records: int
    window_s: float
    rows: list[Any] = field(default_factory=list)
    row_partitions: list[TopicPartition] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    # First offset and its record's Kafka timestamp, per partition: the batch's identity.
    first_positions: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    opened_at: float | None = None

    def add(
        self, tp: TopicPartition, offset: int, rows: list[Any], now: float, timestamp_ms: int = 0
    ) -> None:
        if self.opened_at is None:
            self.opened_at = now
        self.rows.extend(rows)
        self.row_partitions.extend([tp] * len(rows))
        self.first_positions.setdefault(tp, (offset, timestamp_ms))
        # Commit semantics: the offset committed is the next one to read.
        self.next_offsets[tp] = max(self.next_offsets.get(tp, 0), offset + 1)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def has_offsets(self) -> bool:
        return bool(self.next_offsets)

    def space(self) -> int:
        return max(self.max_records - len(self.rows), 0)

    def due(self, now: float) -> bool:
        if len(self.rows) >= self.max_records:
            return True
        return self.opened_at is not None and now - self.opened_at >= self.window_s

    def time_left(self, now: float) -> float:
        if self.opened_at is None:
            return self.window_s
        return max(self.window_s - (now - self.opened_at), 0.0)

    def dedup_token(self) -> str:
        """Names the Kafka records this buffer holds: the same records give the same token.

        The first record's timestamp tells a topic recreated with the same offsets apart.
        """
        ranges = sorted(
            f"{tp.topic}/{tp.partition}:{first}-{self.next_offsets[tp] - 1}@{timestamp}"
            for tp, (first, timestamp) in self.first_positions.items()
        )
        return ",".join(ranges)

    def drop_partitions(self, partitions: set[TopicPartition]) -> int:
        """Forget the records of partitions this worker no longer owns (their next owner
        re-reads them from the last commit). Returns how many rows were dropped."""
        kept = [
            (row, tp)
            for row, tp in zip(self.rows, self.row_partitions, strict=True)
            if tp not in partitions
        ]
        dropped = len(self.rows) - len(kept)
        self.rows = [row for row, _ in kept]
        self.row_partitions = [tp for _, tp in kept]
        for tp in partitions:
            self.next_offsets.pop(tp, None)
            self.first_positions.pop(tp, None)
        if not self.next_offsets:
            self.clear()
        return dropped

    def clear(self) -> None:
        self.rows = []
        self.row_partitions = []
        self.next_offsets = {}
        self.first_positions = {}
        self.opened_at = None
