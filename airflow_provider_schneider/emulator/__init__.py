"""Local emulator of Schneider Electric's distributor API gateway (stdlib only, starts fast).

Develop DAGs without credentials, and let tests and benchmarks drive failures through ``/_emulator/``.
See README.md beside this file.
"""

from .config import EmulatorConfig
from .server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer"]
