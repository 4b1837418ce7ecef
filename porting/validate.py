"""``python -m porting.validate``: ``reid-porting validate``."""

import sys

from porting.validation.cli import main

if __name__ == "__main__":
    sys.exit(main())
