"""``python -m porting.train`` (also under ``torchrun``)."""

import sys

from porting.train.cli import main

sys.exit(main())
