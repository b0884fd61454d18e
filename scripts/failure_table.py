"""Write the "Failure behaviour" table of docs/failures.md from the tested fault matrix.

``python scripts/failure_table.py`` rewrites the part of docs/failures.md between the ``failure-table`` markers;
``--check`` exits 1 when it is stale. The matrix lives in tests/support/faults.py and
tests/test_fault_matrix.py runs every row, so the table shows tested facts.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "docs" / "failures.md"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from tests.support.faults import readme_failure_section, render_table, with_failure_section

    readme, table = README.read_text(), render_table()
    if "--check" in argv:
        if readme_failure_section(readme) != table:
            print("docs/failures.md failure table is stale: run python scripts/failure_table.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(with_failure_section(readme, table))
    print("updated the failure table in docs/failures.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
