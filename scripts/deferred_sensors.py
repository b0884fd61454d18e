"""Deferred order sensors under a real scheduler and triggerer (see scripts/schneider_e2e/deferred.py).

    .venv/bin/python scripts/deferred_sensors.py --sensors 100 --latency-ms 2000 --poke 5 [--baseline]

Prints one line ``DEFERRED_RESULT {json}``; ``benchmarks/deferred_sensors.py`` runs it for the table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from schneider_e2e.deferred import main

if __name__ == "__main__":
    raise SystemExit(main())
