"""MatConvNet -> reid-porting: ``convert-matconvnet model.mat -o model.pth``.

Data path, one module per step::

    model.mat (v7 or v7.3)
      -> model.read_matconvnet (porting.converters.matfile values; DagNN, cnn_train_dag's
                                net, the importer's layout and SimpleNN (simplenn) read into
                                one DagNN-shaped MCNModel of layout)
      -> check.check_model     (checked spec: every layer's unit checks arity, block, params;
                                sizes propagated; the dry run's memory estimated)
      -> converter.convert     (graph: every layer's unit builds its graph layers in a
                                porting.graph description; arch maps it onto porting.models)
      -> common.write_checkpoint (checkpoint)

A ``dagnn.*`` class is ONE unit in :mod:`.layers` (registered by class name in
:data:`.registry.UNITS`): its arity, its block/param check with its shape rule, and its graph
builder, side by side; it also reads the SimpleNN types it declares (``simplenn``,
``from_simplenn``), which the SimpleNN reader finds through the registry.
The semantics (PyTorch forward, ONNX form) live in :mod:`porting.layers`.
"""

from .converter import build_parser, convert, main

__all__ = ["build_parser", "convert", "main"]
