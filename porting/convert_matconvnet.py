"""``python -m porting.convert_matconvnet``: ``reid-porting convert-matconvnet``."""

import sys

from porting.converters.matconvnet import main

if __name__ == "__main__":
    sys.exit(main())
