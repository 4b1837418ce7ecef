"""Caffe -> reid-porting: ``convert-caffe deploy.prototxt weights.caffemodel -o model.pth``.

Data path, one module per step::

    prototxt + caffemodel
      -> reader.load_net     (files: text/wire parsing with proto's caffe.proto schema,
                              upgrade: V0/V1 nets, reader: phase rules, weights by name,
                              into net's CaffeNet of CaffeLayers)
      -> check.check_net     (checked spec: every layer's unit checks arity, fields, blob
                              shapes; shapes propagated; the dry run's memory estimated)
      -> converter.convert   (graph: every layer's unit builds its graph layers in a
                              porting.graph description; arch maps it onto porting.models)
      -> common.write_checkpoint (checkpoint)

A Caffe layer type is ONE unit in :mod:`.layers` (registered by type name in
:data:`.registry.UNITS`): its arity, its blob count, its parameter check with its shape rule,
and its graph builder, side by side. The semantics (PyTorch forward, ONNX form) live in
:mod:`porting.layers`.
"""

from .converter import build_parser, convert, main

__all__ = ["build_parser", "convert", "main"]
