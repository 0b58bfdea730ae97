"""The ids a day's load has seen so far, kept as 64-bit hashes: which rows may repeat one.

A row whose id hash is new is certainly a first copy and can be appended at once, in the same
stream as every other row; a row whose hash was seen is only a *candidate* copy (a hash can
collide), held back and settled exactly by the warehouse. Memory is 8 bytes per id.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
_HASHED_BYTES = 64  # the head of a longer id is hashed, with its tail and length


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash per id, equal for equal ids (nulls hash as the empty string), read eight
    bytes at a time straight from the Arrow buffers."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    offset_type = np.int64 if pa.types.is_large_string(ids.type) else np.int32
    offsets = np.frombuffer(ids.buffers()[1], offset_type)[ids.offset:ids.offset + len(ids) + 1]
    starts, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    if ids.null_count:
        ends = np.where(ids.is_null().to_numpy(zero_copy_only=False), starts, ends)
    data = np.frombuffer(ids.buffers()[2] or b"", np.uint8)
    padded = np.concatenate([data, np.zeros(8, np.uint8)])
    # every (unaligned) 8-byte word of the text, one starting at each byte
    words = np.ndarray((len(padded) - 7,), "<u8", padded.data, strides=(1,))
    lengths = ends - starts
    hashes = _FNV_OFFSET ^ lengths.astype(np.uint64)
    longest = int(lengths.max(initial=0))
    # (where a word starts, which ids it belongs to): a hash mixes in only its own id's words
    words_read = [(starts + k, lengths > k) for k in range(0, min(longest, _HASHED_BYTES), 8)]
    if longest > _HASHED_BYTES:  # the tail of a long id, where ids of one sender differ
        words_read.append((np.maximum(ends - 8, starts), lengths > _HASHED_BYTES))
    with np.errstate(over="ignore"):
        for position, own in words_read:
            remaining = np.clip(ends - position, 0, 8).astype(np.uint64)
            mask = np.where(remaining == 8, ~np.uint64(0),
                            (np.uint64(1) << (remaining * np.uint64(8))) - np.uint64(1))
            word = words[np.minimum(position, len(words) - 1)]
            mixed = (hashes ^ (word & mask)) * _FNV_PRIME
            hashes = np.where(own, mixed ^ (mixed >> np.uint64(29)), hashes)
    return hashes


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
