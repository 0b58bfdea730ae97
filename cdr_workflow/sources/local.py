"""The local drop folder, searched recursively."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from cdr_workflow.sources.base import CdrFile, Source


class LocalSource(Source):
    def __init__(self, drop_dir: Path, pattern: re.Pattern[str]):
        self.drop_dir = drop_dir
        self.pattern = pattern

    @property
    def description(self) -> str:
        return f"folder {self.drop_dir}"

    def _candidates(self) -> Iterable[tuple[str, str, int, str]]:
        if not self.drop_dir.is_dir():
            return
        root = self.drop_dir.resolve()
        for path in self.drop_dir.rglob("*"):
            # a link pointing outside the drop folder is not ours to read
            if not path.is_file() or not path.resolve().is_relative_to(root):
                continue
            stat = path.stat()
            relative = path.relative_to(self.drop_dir).as_posix()
            yield relative, path.resolve().as_uri(), stat.st_size, \
                f"{stat.st_size}-{stat.st_mtime_ns}"

    def open(self, cdr_file: CdrFile) -> BinaryIO:
        path = (self.drop_dir / cdr_file.relative_path).resolve()
        if not path.is_relative_to(self.drop_dir.resolve()):
            raise ValueError(f"{cdr_file.relative_path} is outside {self.description}")
        return path.open("rb")
