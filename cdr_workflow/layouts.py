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

    @property
    def key_fields(self) -> list[Field]:
        """The fields that carry identity, time and money: a file without one is not whole."""
        keys = {self.id_column, self.event_time_column, "amount", "currency"}
        return [f for f in self.fields if f.column in keys]

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
