"""Export a checkpoint to a verified ONNX or TorchScript file.

* :mod:`~porting.export.rewrite` -- the graph walk: :func:`exportable` swaps every layer for
  the export form its :mod:`porting.layers` module defines, :class:`GraphProgram` runs the
  needed part of a converted graph in a traceable, dynamic-batch form;
* :mod:`~porting.export.nets` -- what is exported (the recipe's descriptor, or the
  two-stream net) and the PyTorch reference it must match;
* :mod:`~porting.export.parity` -- the check against a float64 run, before anything is written;
* :mod:`~porting.export.writers` -- the ONNX and TorchScript writers;
* :mod:`~porting.export.cli` -- ``reid-porting export``.

No layer semantics live here: an exported Caffe pooling, LRN or BatchNorm is the layer's own
``export_form``.
"""

from porting.export.cli import build_parser, main, run
from porting.export.nets import EmbedNet, SiameseNet, Spec, build_export, double_export
from porting.export.parity import (
    FP64_TOLERANCE,
    TOLERANCE,
    ParityCheck,
    ParityError,
    max_rel_err,
)
from porting.export.rewrite import ExportError, GraphProgram, exportable, set_im2col
from porting.export.writers import DEFAULT_OPSET, MIN_OPSET, export_onnx, export_torchscript

__all__ = [
    "DEFAULT_OPSET",
    "FP64_TOLERANCE",
    "MIN_OPSET",
    "TOLERANCE",
    "EmbedNet",
    "ExportError",
    "GraphProgram",
    "ParityCheck",
    "ParityError",
    "SiameseNet",
    "Spec",
    "build_export",
    "build_parser",
    "double_export",
    "export_onnx",
    "export_torchscript",
    "exportable",
    "main",
    "max_rel_err",
    "run",
    "set_im2col",
]
