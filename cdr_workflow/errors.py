"""The one error a CDR file raises when it cannot be read as a whole."""


class CdrFileError(Exception):
    """The file as a whole cannot be read; nothing from it is loaded."""

    def __init__(self, source: str, problem: str, line: int | None = None):
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.source, self.problem, self.line = source, problem, line
