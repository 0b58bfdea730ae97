"""Optional keyed pseudonymisation of phone numbers and user ids.

With a key, each value becomes HMAC-SHA256(key, value) (first 128 bits, hex): the same number
always gives the same token, so analysts can join and count, but cannot read the number back
without the key. Rejected lines are stored without their raw text, which would hold numbers.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pyarrow.compute as pc

PSEUDONYMISED_COLUMNS = ("from_endpoint", "to_endpoint", "identity_endpoint", "user_id",
                         "from_user_id", "to_user_id")


def token(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def pseudonymise(rows: pa.Table, key: bytes) -> pa.Table:
    """Replace the personal columns present in `rows` by keyed tokens (nulls stay null)."""
    for name in PSEUDONYMISED_COLUMNS:
        if name not in rows.column_names:
            continue
        column = rows.column(name).combine_chunks()
        distinct = pc.unique(column).drop_null()  # numbers repeat: hash each one once
        tokens = pa.array([token(key, v) for v in distinct.to_pylist()], pa.string())
        rows = rows.set_column(rows.schema.get_field_index(name), name,
                               pc.take(tokens, pc.index_in(column, value_set=distinct)))
    return rows
