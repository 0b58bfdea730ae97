"""Broken lines benchmark: what a few lines that break a CSV parser's stride cost a day's load
(a line cut short, a stray quote in free text), against the same file without them, and
DuckDB's own loader on each file, all measured in the same run.

    python benchmarks/broken_lines.py --rows 1000000 --broken 20

The file is the ingest benchmark's (Sinch ids, a bad line every 10,000 lines, a duplicate id
every 50,000); `--broken` of its lines are then cut short by their last field (rejected), or
get `5" screen` as their free-text `Custom` field (a quote inside a field is a letter: loaded).
A fourth file has a delimiter at the end of every line (a field too many: every line is
rejected), which a CSV export can do to a whole delivery. Each load is `load_day` on DuckDB in
a fresh process, with its peak memory. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from random import Random

from ingest import DAY, _duckdb_baseline, _in_child, _measure, inject_faults

STRAY_QUOTE = b'5" screen'


def break_lines(path: Path, how: str, count: int, seed: int = 1) -> int:
    """Break `count` lines of the file (with a header) in place, or every line (`trailing`);
    returns how many."""
    lines = path.read_bytes().split(b"\n")
    if how == "trailing":
        lines[1:] = [text + b";" if text else text for text in lines[1:]]
        path.write_bytes(b"\n".join(lines))
        return sum(1 for text in lines[1:] if text)
    custom = lines[0].split(b";").index(b"Custom")
    plain = [n for n in range(1, len(lines)) if lines[n] and b'"' not in lines[n]]
    for n in Random(seed).sample(plain, count):
        if how == "cut":
            lines[n] = lines[n].rsplit(b";", 1)[0]
        else:
            fields = lines[n].split(b";")
            fields[custom] = STRAY_QUOTE
            lines[n] = b";".join(fields)
    path.write_bytes(b"\n".join(lines))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--broken", type=int, default=20, help="lines broken in each file")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()

    from cdr_workflow.demo import write_voice_file

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdr-bench-"))
    source = workdir / "source.csv"
    write_voice_file(source, args.rows, DAY)
    inject_faults(source, 10_000, 50_000, sinch_ids=True)
    report: dict[str, dict] = {}
    for how in ("none", "cut", "quote", "trailing"):
        path = workdir / how / "drop" / f"voice_{DAY.isoformat()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, path)
        broken = break_lines(path, how, args.broken) if how != "none" else 0
        database = workdir / how / "baseline.duckdb"
        database.unlink(missing_ok=True)
        baseline = _in_child(_duckdb_baseline, str(path), str(database))["seconds"]
        warehouse = workdir / how / "warehouse.duckdb"
        warehouse.unlink(missing_ok=True)
        report[how] = {"broken_lines": broken,
                       "duckdb_read_csv_typed_store_rejects_seconds": round(baseline, 3),
                       **_measure(path, "voice", f"duckdb:///{warehouse}", baseline)}
    print(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
