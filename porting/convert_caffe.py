"""``python -m porting.convert_caffe``: ``reid-porting convert-caffe``."""

import sys

from porting.converters.caffe import main

if __name__ == "__main__":
    sys.exit(main())
