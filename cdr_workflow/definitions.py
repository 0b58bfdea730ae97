"""The one Definitions object: every module of the `defs` folder contributes its part.

workspace.yaml, `dg`, docker and the tests load this module; settings are read from the
environment each time the definitions are built.
"""

import warnings
from pathlib import Path

import dagster as dg

# Backfill policies, pools and partitioned checks are used on purpose; their beta and preview
# notices would otherwise repeat in every process that loads the code.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),  # steps share one process
    )
