"""Where CDR files come from: a small interface and the file-name rules shared by all sources."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cdr_workflow.layouts import KINDS

DEFAULT_FILE_PATTERN = (
    r"(?i)(?P<kind>verification|voice).*?(?<!\d)(?P<date>\d{4}-\d{2}-\d{2}|\d{8})(?!\d)"
    r"[^/]*\.(?:csv|txt)(?:\.gz)?$"
)


@dataclass(frozen=True)
class CdrFile:
    kind: str
    day: dt.date
    relative_path: str  # relative to the drop folder / prefix: the `source_file` in tables
    uri: str
    size_bytes: int
    fingerprint: str  # changes when the content is replaced


@dataclass(frozen=True)
class Listing:
    files: list[CdrFile]
    ignored: list[str]  # relative paths that are not CDR files by the pattern


def classify(relative_path: str, pattern: re.Pattern[str]) -> tuple[str, dt.date] | None:
    """(kind, day) of a path by the file pattern, or None when it is not a CDR file."""
    match = pattern.search(relative_path)
    if not match:
        return None
    kind = match.group("kind").lower()
    if kind not in KINDS:
        return None
    text = match.group("date").replace("-", "")
    try:
        return kind, dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


class Source(ABC):
    pattern: re.Pattern[str]

    @property
    @abstractmethod
    def description(self) -> str:
        """Where this source looks, for messages (never with credentials)."""

    @abstractmethod
    def _candidates(self) -> Iterable[tuple[str, str, int, str]]:
        """(relative path, uri, size, fingerprint) of every object under the source."""

    @abstractmethod
    def open(self, cdr_file: CdrFile) -> BinaryIO:
        """A binary stream of the file's bytes, read incrementally."""

    def list(self) -> Listing:
        files, ignored = [], []
        for relative, uri, size, fingerprint in self._candidates():
            found = classify(relative, self.pattern)
            if found is None:
                ignored.append(relative)
            else:
                files.append(CdrFile(found[0], found[1], relative, uri, size, fingerprint))
        return Listing(sorted(files, key=lambda f: f.relative_path), sorted(ignored))

    def find(self, kind: str, day: dt.date) -> list[CdrFile]:
        return [f for f in self.list().files if f.kind == kind and f.day == day]

    def iter_days(self) -> Iterator[tuple[str, dt.date, list[CdrFile]]]:
        by_day: dict[tuple[str, dt.date], list[CdrFile]] = {}
        for f in self.list().files:
            by_day.setdefault((f.kind, f.day), []).append(f)
        for (kind, day), files in sorted(by_day.items()):
            yield kind, day, files


class NoFileError(Exception):
    """No file for a kind and day: that day fails alone, with a message saying where we looked."""

    def __init__(self, kind: str, day: dt.date, source: Source):
        super().__init__(
            f"no {kind} CDR file for {day.isoformat()} in {source.description} "
            f"matching pattern {source.pattern.pattern!r}")
