"""``python -m porting.compare``: ``reid-porting compare``."""

import sys

from porting.converters.compare import main

if __name__ == "__main__":
    sys.exit(main())
