"""The one Definitions object: every module of the `defs` folder contributes its part.

workspace.yaml, `dg`, docker and the tests load this module; settings are read from the
environment when the definitions are built.
"""

import functools
import gc
import importlib
import os
import pkgutil
import warnings

import dagster as dg

# What the process holds by now (mostly Dagster's imports) lives as long as it does: the
# collector need not walk it again in each full collection, nor at exit (a one-day `dagster
# asset materialize` of 100 rows, whole process, six alternating runs: 3.60-3.82 s -> 2.80-3.21
# s). Frozen once, here: what is made later is collected as usual.
gc.freeze()

# Backfill policies, pools and partitioned checks are used on purpose; their beta and preview
# notices would otherwise repeat in every process that loads the code.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

# the environment the definitions depend on: settings, and what configures storage and services
SETTING_PREFIXES = ("CDR_", "AWS_", "PYICEBERG_", "DAGSTER_")


@dg.definitions
def defs() -> dg.Definitions:
    # Dagster calls this each time it loads the code, six times in one `dagster asset
    # materialize` (0.3-0.5 s each): built once per process and environment
    return _built(tuple(sorted((name, value) for name, value in os.environ.items()
                               if name.startswith(SETTING_PREFIXES))))


@functools.cache
def _built(environment: tuple[tuple[str, str], ...]) -> dg.Definitions:
    return dg.Definitions.merge(
        *_defs_folder(),
        dg.Definitions(executor=dg.in_process_executor),  # steps share one process
    )


def _defs_folder() -> list[dg.Definitions]:
    """What each module of the `defs` folder defines, as `dg.load_from_defs_folder` loads it,
    without the catalogue of every installed package's component types that it adds for the
    UI: building that imports them, dagster-aws's and boto3 with them, in every process that
    loads the code (the code server, each run, each `dagster` command: loading the code took
    1.9-2.4 s with it, 1.0-1.4 s without). This project defines no components."""
    folder = importlib.import_module("cdr_workflow.defs")
    modules = [importlib.import_module(f"{folder.__name__}.{m.name}")
               for m in pkgutil.iter_modules(folder.__path__)]
    return [module.defs() for module in modules if hasattr(module, "defs")]
