"""Realistic Sinch CDR files for demos, tests and benchmarks (all five layouts).

Each day gets one verification file and one voice file per call type, with a header, a few bad
lines (so quarantine has something to show) and one late app-app record from the day before.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

from cdr_workflow.layouts import LAYOUTS, VERIFICATION, Layout

COUNTRIES = ("SE", "DE", "GB", "US", "FR", "BR", "IN", "NG")
APP_KEYS = ("app-7f3a", "app-c21e", "app-90bd")
CURRENCIES = ("EUR", "USD")


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _number(rng: random.Random) -> str:
    return f"+{rng.randint(1, 99)}{rng.randint(100_000_000, 999_999_999)}"


def _amount(rng: random.Random) -> str:
    return f"{rng.randint(0, 250_000) / 1_000_000:.6f}".rstrip("0").rstrip(".") or "0"


def verification_row(rng: random.Random, day: dt.date, n: int) -> dict[str, str]:
    start = dt.datetime.combine(day, dt.time()) + dt.timedelta(
        seconds=rng.uniform(0, 86_399))
    method = rng.choice(("SMS", "flashCall", "callout"))
    result = rng.choices(("SUCCESSFUL", "FAIL", "DENIED", "ABORTED", "ERROR"),
                         (80, 10, 3, 5, 2))[0]
    return {
        "VerificationId": f"v-{day:%Y%m%d}-{n:09d}",
        "UserSpaceId": str(rng.randint(1000, 1010)),
        "Method": method,
        "StartTimestamp": _timestamp(start),
        "EndTimestamp": _timestamp(start + dt.timedelta(seconds=rng.uniform(1, 90))),
        "Result": result,
        "Reason": "N/A" if result == "SUCCESSFUL" else rng.choice(("Expired", "N/A", "Fraud")),
        "CLI": _number(rng) if method == "flashCall" else "",
        "IdentityType": "number",
        "IdentityEndpoint": _number(rng),
        "Country": rng.choice(COUNTRIES),
        "Reference": f"ref-{n}",
        "Custom": "",
        "ApplicationKey": rng.choice(APP_KEYS),
        "Amount": _amount(rng),
        "Currency": rng.choice(CURRENCIES),
    }


def _initials(name: str) -> str:
    return "".join(word[0] for word in name.split("_"))


def voice_row(rng: random.Random, layout: Layout, day: dt.date, n: int) -> dict[str, str]:
    call_time = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.uniform(0, 86_000))
    results = LAYOUTS[layout.name].field("result").allowed or ("ANSWERED",)
    result = rng.choices(results, [70] + [10] * (len(results) - 1))[0]
    duration = rng.randint(1, 600) if result == "ANSWERED" else 0
    reasons = layout.field("reason").allowed or ("CALLERHANGUP", "CALLEEHANGUP", "N/A")
    row = {
        "CallId": f"{_initials(layout.name)}-{day:%Y%m%d}-{n:09d}",
        "UserSpaceId": str(rng.randint(1000, 1010)),
        "CallTime": _timestamp(call_time),
        "Result": result,
        "Reason": "N/A" if result == "ANSWERED" and "N/A" in reasons else rng.choice(reasons),
        "Duration": str(duration),
        "AnswerTime": _timestamp(call_time + dt.timedelta(seconds=rng.uniform(1, 20)))
        if result == "ANSWERED" else "",
        "From": _number(rng),
        "To": _number(rng) if layout.name != "sip_terminated" else f"sip:{n}@pbx.example.com",
        "Amount": _amount(rng) if duration else "0",
        "Currency": rng.choice(CURRENCIES),
        "Custom": rng.choice(("", "campaign=spring", 'note="a;b"')),
        "ApplicationKey": rng.choice(APP_KEYS),
        "UserId": f"user-{rng.randint(1, 500)}",
        "ToCountryId": rng.choice(COUNTRIES),
        "FromUserId": f"user-{rng.randint(1, 500)}",
        "ToUserId": f"user-{rng.randint(1, 500)}",
    }
    return {f.sinch_name: row[f.sinch_name] for f in layout.fields}


def _quote(value: str) -> str:
    if any(c in value for c in ';"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_lines(layout: Layout, rows: Iterator[dict[str, str]]) -> Iterator[str]:
    yield ";".join(f.sinch_name for f in layout.fields) + "\n"
    for row in rows:
        yield ";".join(_quote(row[f.sinch_name]) for f in layout.fields) + "\n"


def _rows(layout: Layout, day: dt.date, count: int, rng: random.Random,
          with_faults: bool) -> Iterator[dict[str, str]]:
    for n in range(count):
        row = (verification_row(rng, day, n) if layout is VERIFICATION
               else voice_row(rng, layout, day, n))
        if with_faults and n in (7, 19):  # a few bad lines each file, for the quarantine
            row["Currency" if "Currency" in row else "Result"] = "euro"
        if with_faults and n == 11 and "Duration" in row:
            row["Duration"] = "-4"
        yield row
    if with_faults and layout.name == "app_app":  # a CDR from yesterday, written late
        late = voice_row(rng, layout, day - dt.timedelta(days=1), count + 1)
        late["CallId"] = f"late-{day:%Y%m%d}"
        yield late


def write_day(drop_dir: Path, day: dt.date, rows_per_file: int = 200, *,
              with_faults: bool = True, seed: int | None = None) -> list[Path]:
    """Write one day's verification file and one voice file per call type."""
    rng = random.Random(seed if seed is not None else day.toordinal())
    drop_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for layout in LAYOUTS.values():
        name = ("verification" if layout is VERIFICATION else f"voice_{layout.name}")
        path = drop_dir / f"{name}_{day.isoformat()}.csv"
        tmp = path.with_suffix(".part")  # write then rename: a sensor never sees half a file
        with tmp.open("w", encoding="utf-8", newline="") as out:
            out.writelines(csv_lines(layout, _rows(layout, day, rows_per_file, rng,
                                                   with_faults)))
        tmp.replace(path)
        written.append(path)
    return written


def write_voice_file(path: Path, rows: int, day: dt.date, seed: int = 1) -> Path:
    """One phone-terminated voice file of `rows` calls, for benchmarks."""
    rng = random.Random(seed)
    layout = LAYOUTS["phone_terminated"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.writelines(csv_lines(layout, (voice_row(rng, layout, day, n) for n in range(rows))))
    return path
