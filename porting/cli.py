"""Console-script entry points; each command's parser lives with its implementation."""

from __future__ import annotations

import importlib
import sys


def _dispatch(module: str) -> None:
    sys.exit(importlib.import_module(module).main(sys.argv[1:]))


def convert_matconvnet() -> None:
    _dispatch("porting.converters.matconvnet")


def convert_caffe() -> None:
    _dispatch("porting.converters.caffe")


def compare() -> None:
    _dispatch("porting.converters.compare")


def validate() -> None:
    _dispatch("porting.validation.cli")


def train() -> None:
    _dispatch("porting.train")


def export() -> None:
    _dispatch("porting.export")
