"""Write docs/failure_behaviour.md (the README "Failure behaviour" table) from the tested fault matrix.

``python scripts/failure_table.py`` rewrites it; ``--check`` exits 1 when it is stale. The matrix lives in
tests/resilience_support.py and tests/test_fault_matrix.py runs every row, so the table shows tested facts.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "failure_behaviour.md"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from tests.resilience_support import render_table

    text = render_table()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(REPO)} is stale: run python scripts/failure_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
