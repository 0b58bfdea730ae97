"""`cdr-workflow demo` writes demo files; `cdr-workflow validate FILE` checks one file."""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import re
import sys
from collections import Counter
from pathlib import Path

from cdr_workflow.demo import write_day
from cdr_workflow.header import SchemaDrift
from cdr_workflow.kinds import KIND_NAMES
from cdr_workflow.reader import CdrFileError, read_cdr_file
from cdr_workflow.settings import Settings, SettingsError

SHOWN_REJECTS = 20


def demo(days: int, rows: int, drop_dir: Path | None) -> int:
    target = drop_dir or Settings.from_env().drop_dir
    today = dt.datetime.now(dt.UTC).date()
    written = []
    for back in range(days, 0, -1):
        day = today - dt.timedelta(days=back)
        if not any(target.glob(f"*_{day.isoformat()}.csv")):  # keep what is there already
            written += write_day(target, day, rows)
    print(f"wrote {len(written)} files into {target}/ (days already there were kept)")
    return 0


def validate(path: Path, kind: str | None, strict: bool) -> int:
    kind = kind or _kind_from_name(path.name)
    if kind is None:
        print(f"{path}: cannot tell the kind from the name; pass --kind verification|voice",
              file=sys.stderr)
        return 2
    valid, rejects, drift = 0, [], SchemaDrift()
    try:
        with path.open("rb") as stream:
            for chunk in read_cdr_file(stream, str(path), kind):
                valid += chunk.rows.num_rows
                rejects += chunk.rejects
                drift = chunk.drift
    except (CdrFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {valid + len(rejects)} lines read, {valid} valid, {len(rejects)} rejected")
    print(f"  schema drift: {drift.describe()}")
    reasons = Counter(reason.split(": ")[0] for r in rejects for reason in r.reasons)
    for reason, count in reasons.most_common():
        print(f"  {count:>8}  {reason}")
    # lines breaking a rule are judged after those that do not type: sorted back to file order
    for r in heapq.nsmallest(SHOWN_REJECTS, rejects, key=lambda r: r.line):
        print(f"  line {r.line}: {'; '.join(r.reasons)}")
    if len(rejects) > SHOWN_REJECTS:
        print(f"  … and {len(rejects) - SHOWN_REJECTS} more rejected lines")
    return 3 if strict and rejects else 0


def _kind_from_name(name: str) -> str | None:
    match = re.search(r"(?i)verification|voice", name)
    return match.group(0).lower() if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdr-workflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_cmd = commands.add_parser("demo", help="write realistic CDR files for the last N days")
    demo_cmd.add_argument("--days", type=int, default=7)
    demo_cmd.add_argument("--rows", type=int, default=500, help="rows per file")
    demo_cmd.add_argument("--drop-dir", type=Path, help="default: CDR_DROP_DIR")
    check_cmd = commands.add_parser("validate", help="read one file, report valid and rejected "
                                    "lines; the warehouse is not touched")
    check_cmd.add_argument("file", type=Path)
    check_cmd.add_argument("--kind", choices=KIND_NAMES)
    check_cmd.add_argument("--strict", action="store_true",
                           help="exit 3 when any line is rejected")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args.days, args.rows, args.drop_dir)
        return validate(args.file, args.kind, args.strict)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
