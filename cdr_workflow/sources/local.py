"""The local drop folder, searched recursively."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from cdr_workflow.sources.base import CdrFile, Source, StoredObject


class LocalSource(Source):
    def __init__(self, drop_dir: Path, pattern: re.Pattern[str]):
        self.drop_dir = drop_dir
        self.pattern = pattern

    @property
    def description(self) -> str:
        return f"folder {self.drop_dir}"

    def _objects(self) -> Iterable[StoredObject]:
        if not self.drop_dir.is_dir():
            return
        root = self.drop_dir.resolve()
        for path in self.drop_dir.rglob("*"):
            # a link pointing outside the drop folder is not ours to read
            if not path.is_file() or not path.resolve().is_relative_to(root):
                continue
            stat = path.stat()
            yield StoredObject(
                relative_path=path.relative_to(self.drop_dir).as_posix(),
                uri=path.resolve().as_uri(),
                size_bytes=stat.st_size,
                fingerprint=f"{stat.st_size}-{stat.st_mtime_ns}",
                # ctime too: a file moved in keeps its old mtime, but its ctime is new
                modified=dt.datetime.fromtimestamp(max(stat.st_mtime, stat.st_ctime), dt.UTC),
            )

    def open(self, cdr_file: CdrFile) -> BinaryIO:
        return self.local_path(cdr_file).open("rb")

    def local_path(self, cdr_file: CdrFile) -> Path:
        path = (self.drop_dir / cdr_file.relative_path).resolve()
        if not path.is_relative_to(self.drop_dir.resolve()):
            raise ValueError(f"{cdr_file.relative_path} is outside {self.description}")
        return path
