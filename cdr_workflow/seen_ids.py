"""The ids a day's load has seen so far, kept as 64-bit hashes: which rows may repeat one.

A row whose id hash is new is certainly a first copy and can be appended at once, in the same
stream as every other row; a row whose hash was seen is only a *candidate* copy (a hash can
collide), held back and settled exactly by the warehouse. Memory: 8 bytes per slot, 12 to 23
bytes per id (a 10M-id day: 134 MB).
"""

from __future__ import annotations

import functools

import duckdb
import numpy as np
import pyarrow as pa

from cdr_workflow.duckdb_connect import connect


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """DuckDB's 64-bit hash of each id (equal ids hash alike), on a connection of its own."""
    cursor = _hasher().cursor()  # one per call: a connection is not shared between threads
    try:
        return cursor.from_arrow(pa.table({"id": ids})).select("hash(id) AS h").fetchnumpy()["h"]
    finally:
        cursor.close()


# The `id_hash` column: the hash halved to fit a signed BIGINT, in SQL and from `id_hashes`
ID_HASH_SQL = "CAST(hash({id}) >> 1 AS BIGINT)"


def among(hashes: np.ndarray, sorted_hashes: np.ndarray) -> np.ndarray:
    """True where a hash is among `sorted_hashes` (binary searches: 1M sorted hashes among
    1M in 0.05-0.1 s)."""
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    at = np.searchsorted(sorted_hashes, hashes)
    np.minimum(at, len(sorted_hashes) - 1, out=at)
    return sorted_hashes[at] == hashes


def stored_id_hashes(hashes: np.ndarray) -> pa.Array:
    """`id_hashes` as the `id_hash` column keeps them (`ID_HASH_SQL` in DuckDB)."""
    return pa.array((hashes >> np.uint64(1)).astype(np.int64))


def _first_of_each(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct hash, sorted, and the position of its first copy, as
    `np.unique(return_index=True)` gives them: here by an unstable sort and the smallest
    position in each run of equal hashes, where `np.unique` sorts stably, 3-4x slower (1M
    hashes in 48k batches: 22 ms against 77 ms)."""
    order = np.argsort(hashes)
    ordered = hashes[order]
    if not len(ordered):
        return ordered, order
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.minimum.reduceat(order, starts)


@functools.cache
def _hasher() -> duckdb.DuckDBPyConnection:
    return connect(":memory:", config={"threads": 1})


class SeenIds:
    """A hash set of the hashes seen, with linear probing: a hash's home slot is its top bits,
    so a sorted batch probes the table front to back, and growing places every stored hash
    in one vectorised pass (in sorted order each one lands right after the one before it or
    at home). Probing never wraps: it runs into a tail of slots past the last home."""

    EMPTY = np.uint64(0)  # a hash of 0 is stored as 1: a collision, settled like any other
    MAX_LOAD = 0.7
    TAIL = 1024  # slots past the last home slot, where the last runs of hashes end

    def __init__(self, home_bits: int = 16) -> None:
        self._bits = home_bits
        self._slots = np.zeros((1 << home_bits) + self.TAIL, dtype=np.uint64)
        self._count = 0

    def add(self, hashes: np.ndarray) -> np.ndarray:
        """Record the hashes; True where one was seen before, earlier in these or in a call
        before."""
        hashes = self.storable(hashes)
        unique, first = _first_of_each(hashes)
        while self._count + len(unique) > self.MAX_LOAD * (1 << self._bits):
            self._grow()
        new = np.zeros(len(unique), dtype=bool)
        pending = np.arange(len(unique))
        while len(pending):
            pending = self._insert(unique, pending, new)
            if len(pending):  # a run reached the end of the tail
                self._grow()
        self._count += int(new.sum())
        seen = np.ones(len(hashes), dtype=bool)
        seen[first[new]] = False
        return seen

    def hashes(self) -> np.ndarray:
        """Every hash seen, once each, sorted (0 as 1)."""
        return np.sort(self._slots[self._slots != self.EMPTY])

    @classmethod
    def storable(cls, hashes: np.ndarray) -> np.ndarray:
        """The hashes as the set keeps them: 0 (its empty slot) as 1."""
        return np.where(hashes == cls.EMPTY, np.uint64(1), hashes)

    @classmethod
    def sorted_storable(cls, hashes: np.ndarray) -> np.ndarray:
        """The hashes in the form `hashes` gives, repeats allowed: what a search reads."""
        return np.sort(cls.storable(hashes))

    def _insert(self, keys: np.ndarray, pending: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Insert keys[pending] (distinct), marking in `new` those that were not there; the
        ones left when a probe would leave the table."""
        slots = (keys >> np.uint64(64 - self._bits)).astype(np.int64)
        while len(pending):
            at = slots[pending]
            if at.max() >= len(self._slots):
                return pending
            held = self._slots[at]
            free = held == self.EMPTY
            self._slots[at[free]] = keys[pending[free]]  # of keys racing for a slot, one wins
            won = free & (self._slots[at] == keys[pending])
            new[pending[won]] = True
            pending = pending[~(won | (held == keys[pending]))]
            slots[pending] += 1
        return pending

    def _grow(self) -> None:
        # the table holds them almost in order: timsort ("stable") takes that in one pass
        stored = np.sort(self._slots[self._slots != self.EMPTY], kind="stable")
        self._slots = np.zeros(0, dtype=np.uint64)  # freed before the bigger one is made
        self._bits += 1
        # each lands at home or right after the one before it, whichever is later
        places = (stored >> np.uint64(64 - self._bits)).astype(np.int64)
        order = np.arange(len(stored))
        places -= order
        np.maximum.accumulate(places, out=places)
        places += order
        del order
        size = max(1 << self._bits, int(places[-1]) + 1 if len(places) else 0) + self.TAIL
        self._slots = np.zeros(size, dtype=np.uint64)
        self._slots[places] = stored
