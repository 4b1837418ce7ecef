"""``python bench/fuzz [options]``: the fuzz campaign's command line (see the package)."""

import sys
from pathlib import Path

if __name__ == "__main__":
    bench = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(bench.parent), str(bench)]  # the project, and this package as ``fuzz``
    from fuzz import main

    sys.exit(main())
