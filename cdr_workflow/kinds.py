"""Everything that differs between the two kinds of CDR, in one place.

A `Kind` names its Sinch layouts (which hold the id and event-time columns), what counts as
success, how its KPIs and fraud signals are broken down, what an invoice line is per, and how its
assets are described. Nothing outside this module branches on a kind's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdr_workflow.layouts import APP_APP, PHONE_ORIGINATED, PHONE_TERMINATED, SIP_TERMINATED, Layout
from cdr_workflow.layouts import VERIFICATION as VERIFICATION_LAYOUT


@dataclass(frozen=True)
class Dimension:
    """A breakdown of a day's CDRs: a name and the SQL expression over the kind's table, or
    (`by_destination`) a property of the dialled number's destination by the numbering plan."""

    name: str
    sql: str
    by_destination: str | None = None  # a `numbering.Destination` field


@dataclass(frozen=True)
class Kind:
    name: str
    layouts: tuple[Layout, ...]
    success_result: str  # the `result` of a CDR that did what was asked
    event_word: str  # one CDR: "request" or "call"
    kpi_dimensions: tuple[Dimension, ...]
    signal_dimensions: tuple[Dimension, ...]
    flag_name: str  # what a spike with collapsing success is called
    flag_meaning: str
    product_column: str  # an invoice line is per currency × application key × this
    rate_name: str  # the success share as the trade calls it
    cost_base: str  # the KPI that cost is divided by
    # voice only: results that reached the callee (NER) and the answered seconds (ACD, minutes)
    reached_results: tuple[str, ...] = ()
    duration_column: str | None = None

    @property
    def id_column(self) -> str:
        return self.layouts[0].id_column

    @property
    def event_time_column(self) -> str:
        return self.layouts[0].event_time_column

    @property
    def table(self) -> str:
        return f"{self.name}_cdrs"

    @property
    def has_call_types(self) -> bool:
        """Several layouts share the table; `call_type` tells them apart."""
        return len(self.layouts) > 1

    @property
    def has_amounts(self) -> bool:
        return any(lay.amount_column for lay in self.layouts)

    @property
    def grouped_columns(self) -> tuple[str, ...]:
        """The columns a day's checks, KPIs and invoice lines group its rows by."""
        money = ("currency", "application_key") if self.has_amounts else ()
        breakdowns = (d.sql for d in self.kpi_dimensions if d.sql.isidentifier())
        return tuple(dict.fromkeys(("result", "reason", *money, self.product_column,
                                    *breakdowns)))

    @property
    def kpi_description(self) -> str:
        measures = ("attempts, ASR, ACD, NER, minutes, cost and cost per minute"
                    if self.duration_column else
                    "requests, conversion, cost per successful verification")
        return (f"Daily {self.name} KPIs by "
                + ", ".join(d.name for d in self.kpi_dimensions if d.name != "all")
                + f": {measures} (table `cdr_kpis_daily`), and a self-contained HTML report "
                "with 30-day charts.")

    @property
    def signal_description(self) -> str:
        return ("Fraud and anomaly signals per " + " and ".join(
            d.name.replace("_", " ") for d in self.signal_dimensions)
            + ": volume against its trailing median and success rate against its norm, "
            f"flagging {self.flag_meaning} (table `cdr_signals_daily`).")


ALL = Dimension("all", "'all'")

VERIFICATION = Kind(
    name="verification",
    layouts=(VERIFICATION_LAYOUT,),
    success_result="SUCCESSFUL",
    event_word="request",
    kpi_dimensions=(ALL, Dimension("country", "country"), Dimension("method", "method"),
                    Dimension("application_key", "application_key")),
    signal_dimensions=(Dimension("country", "country"),),
    flag_name="pumping",
    flag_meaning="SMS / flash-call pumping",
    product_column="method",
    rate_name="conversion",
    cost_base="successes",
)

VOICE = Kind(
    name="voice",
    layouts=(PHONE_TERMINATED, PHONE_ORIGINATED, APP_APP, SIP_TERMINATED),
    success_result="ANSWERED",
    event_word="call",
    kpi_dimensions=(ALL, Dimension("call_type", "call_type"),
                    Dimension("country", "to_country_id"),
                    Dimension("application_key", "application_key")),
    signal_dimensions=(
        Dimension("destination_country", "to_endpoint", by_destination="region"),
        Dimension("destination_type", "to_endpoint", by_destination="number_type")),
    flag_name="irsf_suspect",
    flag_meaning="IRSF-like traffic (spikes to premium-rate and other high-cost ranges, or to a "
                 "destination country with collapsing success)",
    product_column="call_type",
    rate_name="asr",
    cost_base="minutes",
    reached_results=("ANSWERED", "BUSY", "NOANSWER"),
    duration_column="duration",
)

KINDS: dict[str, Kind] = {k.name: k for k in (VERIFICATION, VOICE)}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown CDR kind {name!r}; expected one of {KIND_NAMES}") from None
