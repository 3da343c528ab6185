"""Which command records of a partition are finished, and how far offsets may be committed.

Commands of different keys finish out of order (one slow provider call must
not hold back the others); an offset can only be committed up to the first
record not finished yet. Records finished beyond it are already recorded in
the ledger, so if they come back after a crash they are skipped. Pure.
"""

from __future__ import annotations

from collections import deque


class PartitionProgress:
    def __init__(self) -> None:
        self._open: deque[int] = deque()  # offsets taken, in order
        self._finished: set[int] = set()
        self._committable: int | None = None

    def take(self, offset: int) -> None:
        if self._open and offset <= self._open[-1]:
            raise ValueError(f"offset {offset} after {self._open[-1]}: records arrive in order")
        self._open.append(offset)

    def finish(self, offset: int) -> None:
        self._finished.add(offset)
        while self._open and self._open[0] in self._finished:
            done = self._open.popleft()
            self._finished.discard(done)
            self._committable = done + 1

    def committable_with(self, finishing: set[int]) -> int | None:
        """The committable offset once `finishing` are finished too (nothing changes):
        a transaction commits the offsets together with the outcomes it holds."""
        committable = self._committable
        for offset in self._open:
            if offset not in self._finished and offset not in finishing:
                break
            committable = offset + 1
        return committable

    @property
    def committable(self) -> int | None:
        """The offset to commit: one past the last record of the finished prefix."""
        return self._committable

    @property
    def in_flight(self) -> int:
        return len(self._open)
