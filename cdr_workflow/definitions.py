"""The one Definitions object: workspace.yaml, docker and the tests load this."""

from cdr_workflow.defs import build_definitions
from cdr_workflow.settings import Settings

defs = build_definitions(Settings.from_env())
