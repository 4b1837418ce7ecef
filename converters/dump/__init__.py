"""``reid-porting dump-tools DIR``: the tools that dump a source framework's vars for ``compare``.

Shipped with the package (this folder) for users who have the source framework:

* ``reid_porting_dump.m``: MATLAB/Octave + MatConvNet (SimpleNN and DagNN), every var for a
  given or seeded input, as a MAT v7 file;
* ``reid_porting_dump_caffe.py``: pycaffe, every blob including values overwritten in place,
  as an ``.npz``.

Both write what :mod:`porting.converters.compare` reads (the format is in the README's
``compare`` section). This command copies them into a folder, or prints where they are.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from porting.cli import HelpFormatter, examples_epilog

from ..common import ConversionError, run_cli

#: The shipped tools, in this folder.
TOOLS = ("reid_porting_dump.m", "reid_porting_dump_caffe.py")
FOLDER = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reid-porting dump-tools", epilog=examples_epilog("dump-tools"),
        formatter_class=HelpFormatter,
        description="Copy the dump tools (MATLAB/Octave for MatConvNet, a pycaffe script) "
        "into a folder; their output is what 'reid-porting compare' reads.")
    p.add_argument("folder", nargs="?", help="where to copy them (created if missing)")
    p.add_argument("--print-path", action="store_true",
                   help="print the folder they are installed in instead (for addpath)")
    return p


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_path == (args.folder is not None):
        parser.error("give a folder or --print-path")
    if args.print_path:
        print(FOLDER)
        return 0
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise ConversionError(f"{folder}: exists and is not a folder")
    taken = [name for name in TOOLS if (folder / name).exists()]
    if taken:
        raise ConversionError(f"{folder / taken[0]}: already exists (remove it or choose "
                              "another folder)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOOLS:
        shutil.copyfile(FOLDER / name, folder / name)
        print(folder / name)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)
