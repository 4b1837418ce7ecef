"""``python -m porting.export``."""

import sys

from porting.export.cli import main

sys.exit(main())
