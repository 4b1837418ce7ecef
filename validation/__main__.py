"""``python -m porting.validation`` (and ``torchrun ... -m porting.validation``) = validate."""

import sys

from .cli import main

sys.exit(main())
