"""Where CDR files come from: a small interface and the file-name rules shared by all sources."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cdr_workflow.kinds import KIND_NAMES

# the kind word stands as a word (`invoice_…` is not voice), then a date, then the extension
DEFAULT_FILE_PATTERN = (
    r"(?i)(?<!expected_)(?<![a-z])(?P<kind>verification|voice)(?![a-z]).*?(?<!\d)"
    r"(?P<date>\d{4}-\d{2}-\d{2}|\d{8})(?!\d)[^/]*\.(?:csv|txt)(?:\.gz)?$"
)
# what editors, operating systems and browsers leave beside real files
LEFTOVER_NAME = re.compile(r"^(~\$|\._|\.)|\.(part|partial|crdownload|download|tmp)$",
                           re.IGNORECASE)

# the customer's own records, beside the CDRs (CDR_EXPECTED_DIR / CDR_EXPECTED_PREFIX)
EXPECTED_FILE_PATTERN = (
    r"(?i)expected_(?P<kind>verification|voice)_(?P<date>\d{4}-\d{2}-\d{2}|\d{8})"
    r"\.(?:csv|txt)(?:\.gz)?$"
)


@dataclass(frozen=True)
class StoredObject:
    """Any file or object under the source, before the file-name pattern is applied."""

    relative_path: str  # relative to the drop folder / prefix: the `source_file` in tables
    uri: str
    size_bytes: int
    fingerprint: str  # changes when the content is replaced
    modified: dt.datetime  # UTC


@dataclass(frozen=True)
class CdrFile(StoredObject):
    """A stored object that the file-name pattern names as one kind's file for one day."""

    kind: str
    day: dt.date


@dataclass(frozen=True)
class Listing:
    """One look at the source: list once per run or tick, then find days in it."""

    files: list[CdrFile]
    ignored: list[str]  # relative paths that are not CDR files by the pattern

    def find(self, kind: str, day: dt.date) -> list[CdrFile]:
        return [f for f in self.files if f.kind == kind and f.day == day]


def classify(relative_path: str, pattern: re.Pattern[str]) -> tuple[str, dt.date] | None:
    """(kind, day) of a path by the file pattern, or None when it is not a CDR file (editor,
    OS and download leftovers and hidden files never are)."""
    if any(LEFTOVER_NAME.search(part) for part in relative_path.split("/")):
        return None
    match = pattern.search(relative_path)
    if not match:
        return None
    kind = match.group("kind").lower()
    if kind not in KIND_NAMES:
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
    def _objects(self) -> Iterable[StoredObject]:
        """Every file or object under the source."""

    @abstractmethod
    def open(self, cdr_file: CdrFile) -> BinaryIO:
        """A binary stream of the file's bytes, read incrementally."""

    def local_path(self, cdr_file: CdrFile) -> Path | None:  # noqa: B027 - local sources
        """The file on this machine's disk, when it is there (read in place, not copied)."""
        return None

    def list(self) -> Listing:
        files, ignored = [], []
        for obj in self._objects():
            found = classify(obj.relative_path, self.pattern)
            if found is None:
                ignored.append(obj.relative_path)
            else:
                files.append(CdrFile(**vars(obj), kind=found[0], day=found[1]))
        return Listing(sorted(files, key=lambda f: f.relative_path), sorted(ignored))


class NoFileError(Exception):
    """No file for a kind and day: that day fails alone, with a message saying where we looked."""

    def __init__(self, kind: str, day: dt.date, source: Source):
        super().__init__(
            f"no {kind} CDR file for {day.isoformat()} in {source.description} "
            f"matching pattern {source.pattern.pattern!r}")
