"""Where files come from: the local drop folder or S3, behind one `Source` interface."""

from cdr_workflow.sources.base import (
    DEFAULT_FILE_PATTERN,
    CdrFile,
    Listing,
    NoFileError,
    Source,
    StoredObject,
    classify,
)

__all__ = ["DEFAULT_FILE_PATTERN", "CdrFile", "Listing", "NoFileError", "Source", "StoredObject",
           "classify"]
