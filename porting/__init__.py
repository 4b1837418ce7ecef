"""reid-porting: faithful PyTorch ports of the MatConvNet and Caffe re-ID models of
Zheng, Zheng & Yang, "A Discriminatively Learned CNN Embedding for Person
Re-identification" (ACM TOMM 2017).

The data path, and where each step lives::

    files          -> preprocessing     -> model (layers)   -> features         -> metrics, report
    converters,       preprocess,          graph, models,      recipes,            validation
    validation        imresize             layers              feature_extractor   .metrics, .report

Three layers, imported one way (layers <- pipeline <- applications):

* **semantics** -- :mod:`porting.layers`: each Caffe / MatConvNet layer behaviour once, with
  its exact export form;
* **pipeline** -- :mod:`porting.preprocess` and :mod:`porting.imresize` (the original
  preprocessing), :mod:`porting.recipes` (descriptors), :mod:`porting.checkpoint`,
  :mod:`porting.checkpoint_safetensors` and :mod:`porting.loading` (the checkpoint format, as
  ``.pth`` or ``.safetensors``), :mod:`porting.pretrained` and :mod:`porting.model_card` (its
  folder form for the Hub), :mod:`porting.graph` (the graph runner),
  :mod:`porting.models`, :mod:`porting.feature_extractor`, :mod:`porting.inference` (fast or
  exact arithmetic), :mod:`porting.outputs`, :mod:`porting.progress`;
* **applications** -- :mod:`porting.converters`, :mod:`porting.validation`,
  :mod:`porting.train`, :mod:`porting.export`, :mod:`porting.demo`, and :mod:`porting.cli`
  (``reid-porting VERB``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from porting.checkpoint import (
        CheckpointError,
        load_checkpoint,
        make_checkpoint,
        save_checkpoint,
    )
    from porting.feature_extractor import FeatureExtractor
    from porting.loading import load, model_from_checkpoint
    from porting.pretrained import from_pretrained, push_to_hub, save_pretrained

__version__ = "0.1.0"

# The names below are imported on first use (PEP 562): ``import porting.cli`` does not load
# torch, so that the command line's error boundary (porting.boundary) is in place while it
# loads (Ctrl-C then is one line, not a traceback from inside torch's import).
_LAZY = {"CheckpointError": "porting.checkpoint", "load_checkpoint": "porting.checkpoint",
         "make_checkpoint": "porting.checkpoint", "save_checkpoint": "porting.checkpoint",
         "FeatureExtractor": "porting.feature_extractor", "load": "porting.loading",
         "model_from_checkpoint": "porting.loading", "from_pretrained": "porting.pretrained",
         "push_to_hub": "porting.pretrained", "save_pretrained": "porting.pretrained"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    try:  # ``porting.checkpoint`` etc. without importing them first, as before
        return importlib.import_module(f"porting.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"porting.{name}":
            raise
    raise AttributeError(f"module 'porting' has no attribute {name!r}")

__all__ = [
    "CheckpointError",
    "FeatureExtractor",
    "load",
    "load_checkpoint",
    "make_checkpoint",
    "model_from_checkpoint",
    "from_pretrained",
    "push_to_hub",
    "save_checkpoint",
    "save_pretrained",
]
