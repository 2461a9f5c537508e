"""`distributor ...`: the operator's command line, one module per room.

core.py holds the shared pieces (settings, store, time parsing) and the foundation
commands; each other module adds its group of commands to the same `app`.
"""

from distributor.cli import channels, inbound, operations, operators, sending, sources, subscribers, trending  # noqa: F401  (register commands)
from distributor.cli.core import app, main

__all__ = ["app", "main"]
