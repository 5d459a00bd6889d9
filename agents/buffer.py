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
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    opened_at: float | None = None

    def add(self, tp: TopicPartition, offset: int, rows: list[Any], now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now
        self.rows.extend(rows)
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

    def clear(self) -> None:
        self.rows = []
        self.next_offsets = {}
        self.opened_at = None
