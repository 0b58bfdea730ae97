"""The one Definitions object: every module of the `defs` folder contributes its part.

workspace.yaml, `dg`, docker and the tests load this module; settings are read from the
environment each time the definitions are built.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),  # steps share one process
    )
