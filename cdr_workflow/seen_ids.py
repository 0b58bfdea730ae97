"""The ids a day's load has seen so far, kept as 64-bit hashes: which rows may repeat one.

A row whose id hash is new is certainly a first copy and can be appended at once, in the same
stream as every other row; a row whose hash was seen is only a *candidate* copy (a hash can
collide), held back and settled exactly by the warehouse. Memory is 8 bytes per id.
"""

from __future__ import annotations

import functools

import duckdb
import numpy as np
import pyarrow as pa


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """DuckDB's 64-bit hash of each id (equal ids hash alike), on a connection of its own."""
    cursor = _hasher().cursor()  # one per call: a connection is not shared between threads
    try:
        return cursor.from_arrow(pa.table({"id": ids})).select("hash(id) AS h").fetchnumpy()["h"]
    finally:
        cursor.close()


@functools.cache
def _hasher() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config={"threads": 1})


class SeenIds:
    """Sorted runs of the hashes seen, merged as they grow (a log-structured set): each look
    is a binary search per run, each hash is merged a logarithmic number of times."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, hashes: np.ndarray) -> np.ndarray:
        """Record the hashes; True where one was seen before, earlier in these or in a call
        before."""
        seen = np.ones(len(hashes), dtype=bool)
        seen[np.unique(hashes, return_index=True)[1]] = False
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            seen |= run[at] == hashes
        if not seen.all():
            self._runs.append(np.sort(hashes[~seen]))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newer = self._runs.pop()
            self._runs[-1] = _merged(self._runs[-1], newer)
        return seen


def _merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two sorted arrays as one, in linear time."""
    merged = np.empty(len(a) + len(b), a.dtype)
    at = np.searchsorted(a, b) + np.arange(len(b))
    merged[at] = b
    rest = np.ones(len(merged), dtype=bool)
    rest[at] = False
    merged[rest] = a
    return merged
