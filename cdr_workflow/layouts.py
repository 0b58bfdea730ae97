"""The five Sinch CDR layouts: the single source of truth for columns, types and rules.

Everything else (reader, pandera schemas, warehouse DDL, UI column schemas, demo data) is
derived from the definitions here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

AMOUNT_SCALE = 6  # decimal places kept exactly; more is a reject, never a silent rounding
AMOUNT_TYPE = pa.decimal128(18, AMOUNT_SCALE)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


class FieldType(Enum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    TIMESTAMP = "timestamp"

    @property
    def arrow(self) -> pa.DataType:
        return {
            FieldType.STRING: pa.string(),
            FieldType.INTEGER: pa.int64(),
            FieldType.DECIMAL: AMOUNT_TYPE,
            FieldType.TIMESTAMP: TIMESTAMP_TYPE,
        }[self]

    @property
    def sql(self) -> str:
        return {
            FieldType.STRING: "VARCHAR",
            FieldType.INTEGER: "BIGINT",
            FieldType.DECIMAL: f"DECIMAL(18, {AMOUNT_SCALE})",
            FieldType.TIMESTAMP: "TIMESTAMPTZ",
        }[self]


@dataclass(frozen=True)
class Field:
    sinch_name: str
    type: FieldType
    description: str
    required: bool = False
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    non_negative: bool = False

    @property
    def column(self) -> str:
        return column_name(self.sinch_name)


@dataclass(frozen=True)
class TimeOrder:
    """`later` may not be before `earlier` when both are present."""

    earlier: str
    later: str


@dataclass(frozen=True)
class Layout:
    name: str  # "verification" or a voice call type
    kind: str  # "verification" or "voice"
    fields: tuple[Field, ...]
    id_column: str
    event_time_column: str
    time_orders: tuple[TimeOrder, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def amount_column(self) -> str | None:
        return "amount" if "amount" in self.columns else None

    def field(self, column: str) -> Field:
        return next(f for f in self.fields if f.column == column)


_SPECIAL_COLUMNS = {"From": "from_endpoint", "To": "to_endpoint", "CLI": "cli"}


def column_name(sinch_name: str) -> str:
    """Sinch field name → snake_case warehouse column (`From`/`To` become `*_endpoint`)."""
    if sinch_name in _SPECIAL_COLUMNS:
        return _SPECIAL_COLUMNS[sinch_name]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", sinch_name).lower()


CURRENCY = r"^[A-Z]{3}$"
COUNTRY = r"^[A-Z]{2}$"
PATTERN_MEANINGS = {CURRENCY: "a 3-letter ISO 4217 code", COUNTRY: "a 2-letter ISO 3166 code"}

VERIFICATION = Layout(
    name="verification",
    kind="verification",
    id_column="verification_id",
    event_time_column="start_timestamp",
    time_orders=(TimeOrder("start_timestamp", "end_timestamp"),),
    fields=(
        Field("VerificationId", FieldType.STRING, "Unique id of the verification request",
              required=True),
        Field("UserSpaceId", FieldType.INTEGER, "Sinch internal identifier"),
        Field("Method", FieldType.STRING, "Verification method", required=True,
              allowed=("flashCall", "SMS", "callout")),
        Field("StartTimestamp", FieldType.TIMESTAMP, "When the request was placed (UTC)",
              required=True),
        Field("EndTimestamp", FieldType.TIMESTAMP, "When the request ended (UTC)"),
        Field("Result", FieldType.STRING, "Outcome of the verification", required=True,
              allowed=("SUCCESSFUL", "FAIL", "DENIED", "ABORTED", "ERROR")),
        Field("Reason", FieldType.STRING, "Reason for the result"),
        Field("CLI", FieldType.STRING, "CLI used for a flash call; empty for SMS"),
        Field("IdentityType", FieldType.STRING, "Identity type of the verified endpoint"),
        Field("IdentityEndpoint", FieldType.STRING, "The number verified"),
        Field("Country", FieldType.STRING, "ISO 3166-1 alpha-2 country of the number",
              pattern=COUNTRY),
        Field("Reference", FieldType.STRING, "Partner reference id"),
        Field("Custom", FieldType.STRING, "Free field for custom information"),
        Field("ApplicationKey", FieldType.STRING, "Application key"),
        Field("Amount", FieldType.DECIMAL, "Debited amount", non_negative=True),
        Field("Currency", FieldType.STRING, "ISO 4217 currency of the amount", pattern=CURRENCY),
    ),
)


def _call_id() -> Field:
    return Field("CallId", FieldType.STRING, "Unique id of the call", required=True)


def _user_space_id() -> Field:
    return Field("UserSpaceId", FieldType.INTEGER, "Sinch internal identifier")


def _call_time() -> Field:
    return Field("CallTime", FieldType.TIMESTAMP, "When the call was made (UTC)", required=True)


def _result(*values: str) -> Field:
    return Field("Result", FieldType.STRING, "Outcome of the call", required=True,
                 allowed=values)


def _reason(*values: str) -> Field:
    return Field("Reason", FieldType.STRING, "Why the call ended", allowed=values or None)


def _duration() -> Field:
    return Field("Duration", FieldType.INTEGER, "Call time in seconds", required=True,
                 non_negative=True)


def _amount() -> Field:
    return Field("Amount", FieldType.DECIMAL, "Cost of the call", non_negative=True)


def _currency() -> Field:
    return Field("Currency", FieldType.STRING, "ISO 4217 currency of the amount",
                 pattern=CURRENCY)


def _custom() -> Field:
    return Field("Custom", FieldType.STRING, "Free field for custom headers")


def _application_key() -> Field:
    return Field("ApplicationKey", FieldType.STRING, "Application key")


PHONE_TERMINATED = Layout(
    name="phone_terminated",
    kind="voice",
    id_column="call_id",
    event_time_column="call_time",
    time_orders=(TimeOrder("call_time", "answer_time"),),
    fields=(
        _call_id(),
        _user_space_id(),
        _call_time(),
        _result("ANSWERED", "BUSY", "NOANSWER", "FAILED"),
        _reason("N/A", "TIMEOUT", "CALLERHANGUP", "CALLEEHANGUP", "BLOCKED", "MANAGERHANGUP",
                "NOCREDITPARTNER", "GENERALERROR", "CANCEL"),
        _duration(),
        Field("AnswerTime", FieldType.TIMESTAMP, "When the call was answered (UTC)"),
        Field("From", FieldType.STRING, "CLI displayed on the terminating side"),
        Field("To", FieldType.STRING, "Terminating phone number"),
        _amount(),
        _currency(),
        _custom(),
        _application_key(),
        Field("UserId", FieldType.STRING, "User id of the user that initiated the call"),
        Field("ToCountryId", FieldType.STRING, "Country of the To number", pattern=COUNTRY),
    ),
)

PHONE_ORIGINATED = Layout(
    name="phone_originated",
    kind="voice",
    id_column="call_id",
    event_time_column="call_time",
    fields=(
        _call_id(),
        _user_space_id(),
        _call_time(),
        _result("ANSWERED", "NOANSWER", "FAILED"),
        _reason("N/A", "CANCEL", "CALLERHANGUP", "CALLEEHANGUP", "NOCREDITPARTNER",
                "GENERALERROR"),
        _duration(),
        Field("From", FieldType.STRING, "Phone number of the caller"),
        Field("To", FieldType.STRING, "Number called (voice DID)"),
        _amount(),
        _currency(),
        _custom(),
        _application_key(),
    ),
)

APP_APP = Layout(
    name="app_app",
    kind="voice",
    id_column="call_id",
    event_time_column="call_time",
    fields=(
        _call_id(),
        _user_space_id(),
        _call_time(),
        _result("ANSWERED", "BUSY", "NOANSWER", "FAILED"),
        _reason("N/A", "TIMEOUT", "HANGUP", "CANCEL"),
        _duration(),
        Field("FromUserId", FieldType.STRING, "User id of the caller"),
        Field("ToUserId", FieldType.STRING, "User id of the callee"),
        _custom(),
        _application_key(),
    ),
)

SIP_TERMINATED = Layout(
    name="sip_terminated",
    kind="voice",
    id_column="call_id",
    event_time_column="call_time",
    fields=(
        _call_id(),
        _user_space_id(),
        _call_time(),
        _result("ANSWERED", "BUSY", "NOANSWER", "FAILED"),
        _reason(),  # Sinch documents no closed list for SIP reasons
        _duration(),
        Field("From", FieldType.STRING, "Originating endpoint or CLI"),
        Field("To", FieldType.STRING, "Endpoint where the call terminated"),
        _custom(),
        _application_key(),
    ),
)

VOICE_LAYOUTS: tuple[Layout, ...] = (PHONE_TERMINATED, PHONE_ORIGINATED, APP_APP, SIP_TERMINATED)
LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (VERIFICATION, *VOICE_LAYOUTS)}
KINDS: tuple[str, ...] = ("verification", "voice")


def layouts_of(kind: str) -> tuple[Layout, ...]:
    if kind == "verification":
        return (VERIFICATION,)
    if kind == "voice":
        return VOICE_LAYOUTS
    raise ValueError(f"unknown CDR kind {kind!r}; expected one of {KINDS}")


@dataclass(frozen=True)
class TableColumn:
    name: str
    sql_type: str
    description: str


# Columns every CDR table carries beyond the Sinch fields.
LINEAGE_COLUMNS: tuple[TableColumn, ...] = (
    TableColumn("cdr_date", "DATE", "Day the file covers (the Dagster partition)"),
    TableColumn("source_file", "VARCHAR", "File the row came from, relative to the drop folder"),
    TableColumn("source_line", "BIGINT", "Line in that file where the record starts (1-based)"),
    TableColumn("load_id", "VARCHAR", "Load that wrote the row (the Dagster run id)"),
    TableColumn("extra_fields", "VARCHAR", "Columns the layout does not know, as JSON"),
)


def table_name(kind: str) -> str:
    layouts_of(kind)
    return f"{kind}_cdrs"


def table_columns(kind: str) -> list[TableColumn]:
    """Warehouse columns of a kind's table: the union of its layouts, then lineage."""
    seen: dict[str, TableColumn] = {}
    if kind == "voice":
        seen["call_type"] = TableColumn(
            "call_type", "VARCHAR", "phone_terminated, phone_originated, app_app or sip_terminated"
        )
    for layout in layouts_of(kind):
        for f in layout.fields:
            seen.setdefault(f.column, TableColumn(f.column, f.type.sql, f.description))
    return [*seen.values(), *LINEAGE_COLUMNS]


def arrow_schema(kind: str) -> pa.Schema:
    """Arrow schema of rows handed to the warehouse, in table column order."""
    types = {f.column: f.type.arrow for lay in layouts_of(kind) for f in lay.fields}
    lineage = {"cdr_date": pa.date32(), "source_file": pa.string(), "source_line": pa.int64(),
               "load_id": pa.string(), "extra_fields": pa.string(), "call_type": pa.string()}
    return pa.schema([(c.name, types.get(c.name) or lineage[c.name]) for c in table_columns(kind)])


def id_column(kind: str) -> str:
    return layouts_of(kind)[0].id_column


def event_time_column(kind: str) -> str:
    return layouts_of(kind)[0].event_time_column
