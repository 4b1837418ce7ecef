"""``export``: a checkpoint to a verified ONNX or TorchScript file.

Usage::

    export CHECKPOINT --onnx out.onnx [--what embed|siamese] [--opset N]
    export CHECKPOINT --torchscript out.pt [--what embed|siamese]

``embed`` is the test-time descriptor: a preprocessed batch ``(N, 3, H, W)`` to ``(N, C)``
per the checkpoint's recipe (the ``feature_var`` blob of a converted graph, or a canonical
model's trunk; the recipe's per-position L2, spatial sum, flip and final L2). ``siamese`` is
the paper's two-stream graph: two batches to the three logit maps. The batch axis is
dynamic, the spatial size is fixed at export (pooling geometry depends on it).

**Export mode.** Several layers have no exact ONNX counterpart, so the module is first
rewritten (:func:`exportable`): the shared modules of :mod:`porting.pooling`,
:mod:`porting.lrn` and :mod:`porting.batchnorm` are replaced by equivalents with a static
geometry taken from a probe run, written only with ops that export one to one:

* Caffe CEIL pooling: explicit ``Pad`` (``-FLT_MAX`` for MAX, 0 for AVE) so every window
  fits, ``MaxPool`` / a sum-pool (a depthwise ``Conv`` with a ones kernel), a crop to
  Caffe's output size, and for AVE a ``Div`` by the precomputed clipped-divisor tensor;
* MatConvNet pooling: ``Pad`` with its asymmetric ``[t b l r]`` (``-inf`` for MAX), and for
  AVG a ``Div`` by the precomputed count of in-image cells;
* both LRN conventions from ``Mul``/``Pad``/``Slice``/``Add`` (the same channel-window sum
  as :func:`porting.lrn.channel_window_sum`, a float64 ``ReduceSum`` when the window spans
  all channels as in MatConvNet's L2 trick), then ``Pow``; ONNX's ``LRN`` op is not used;
* BatchNorm (Caffe blobs / MatConvNet ``moments`` with stored sigma) as ``Sub``/``Div``/
  ``Mul``/``Add`` with constants computed exactly as PyTorch computes them, never ONNX's
  ``BatchNormalization`` (which would add eps to the stored sigma again);
* Caffe's im2col convolutions as ``Conv`` in ONNX (the same sum in another order; the
  reference runtime computes it as im2col + GEMM too) and, in TorchScript, as a batched
  unfold + GEMM (the PyTorch graph's own arithmetic without its per-image loop).

Around the trunk: converted graphs run as a :class:`GraphProgram` (only the layers the
outputs need, test mode); an embedding with a flip recipe runs the image and its mirror as
one batch ``[x; flip(x)]`` through one trunk; when flipping the preprocessed tensor is not
flipping the image (a mean image), the flipped image is a second input.

**The check** (:class:`ParityCheck`). The file is run on the check batch (by default 2
seeded items; the trace used batch 1, so this also checks the dynamic axis): by
:class:`onnx.reference.ReferenceEvaluator` after :func:`onnx.checker.check_model`, or after
``torch.jit.load``. Per output,
``max|a - b| / max|b|`` against the unmodified PyTorch model must be <= 1e-5. Unless
``--fp32-only``, the same export is also built from the model in float64 and run against the
PyTorch model in float64 (<= 1e-10): without float32 rounding this shows any approximation
(eps added twice, a wrong divisor or window) even where it would hide below 1e-5. An output
that is ill-conditioned in float32 (the verification logits: a cancellation) passes above
1e-5 only if the file is as close to the float64 result as PyTorch's float32 result is (2x).
The file is written atomically only when the check passes, with a JSON report next to it
(``out.onnx.json``); the ONNX file carries the preprocessing and recipe in its metadata.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from porting.batchnorm import CaffeBatchNorm, MatConvNetBatchNorm
from porting.checkpoint import CheckpointError, atomic_write, load_checkpoint, sha256_file
from porting.graph import OPS, GraphModule
from porting.lrn import CaffeLRN, MatConvNetLRN
from porting.pooling import (
    FLT_MAX,
    CaffePool2d,
    MatConvNetPool2d,
    _ave_divisor,
    caffe_pooled_size,
)
from porting.recipes import Recipe, get_recipe, l2_normalize, pool_positions

__all__ = [
    "ExportError",
    "ExactPool2d",
    "ExactLRN",
    "ExactBatchNorm",
    "GraphProgram",
    "EmbedNet",
    "SiameseNet",
    "exportable",
    "build_export",
    "double_export",
    "ParityCheck",
    "ParityError",
    "export_onnx",
    "export_torchscript",
    "max_rel_err",
    "main",
]

DEFAULT_OPSET = 17
MIN_OPSET = 13  # ReduceSum with axes as an input
TOLERANCE = 1e-5
FP64_TOLERANCE = 1e-10  # the exported graph in float64 vs PyTorch in float64


class ExportError(ValueError):
    """A checkpoint or request that cannot be exported (one-line message)."""


# --------------------------------------------------------------------------------------------
# Export-exact layers (static geometry)
# --------------------------------------------------------------------------------------------


def _sum_pool(x: torch.Tensor, ones: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Window sums: a depthwise convolution with a ones kernel (``Conv``, group = C)."""
    return F.conv2d(x, ones, None, stride, 0, 1, ones.shape[0])


class ExactPool2d(nn.Module):
    """Pad (constant), then MaxPool or sum-pool without implicit padding, crop, divide.

    Built by :meth:`from_caffe` / :meth:`from_matconvnet` for one input size; computes what
    :class:`~porting.pooling.CaffePool2d` / :class:`~porting.pooling.MatConvNetPool2d` do,
    with ops that map one to one onto ONNX (``Pad``, ``MaxPool``, ``Conv``, ``Slice``,
    ``Div``).
    """

    def __init__(self, method: str, in_shape: Sequence[int], kernel: tuple[int, int],
                 stride: tuple[int, int], pads: tuple[int, int, int, int], fill: float,
                 out_size: tuple[int, int], divisor: torch.Tensor | None) -> None:
        super().__init__()
        if method not in ("max", "sum"):
            raise ValueError(f"method must be 'max' or 'sum', got {method!r}")
        channels, h, w = in_shape[-3:]
        self.method = method
        self.kernel = kernel
        self.stride = stride
        self.pads = pads  # F.pad order: left, right, top, bottom
        self.fill = fill
        self.out_size = out_size
        # Pooled size of the padded input; cropped to out_size when it is larger.
        full = ((h + pads[2] + pads[3] - kernel[0]) // stride[0] + 1,
                (w + pads[0] + pads[1] - kernel[1]) // stride[1] + 1)
        if full[0] < out_size[0] or full[1] < out_size[1]:
            raise ValueError(f"padded input pools to {full}, smaller than {out_size}")
        self.crop = full != tuple(out_size)
        if method == "sum":
            self.register_buffer("ones", torch.ones(channels, 1, *kernel))
        self.register_buffer("divisor", divisor)

    @classmethod
    def from_caffe(cls, pool: CaffePool2d, shape: Sequence[int]) -> ExactPool2d:
        _, h, w = shape[-3:]
        kh, kw = (h, w) if pool.global_pooling else pool.kernel_size
        (sh, sw), (ph, pw) = pool.stride, pool.pad
        oh = caffe_pooled_size(h, kh, sh, ph, pool.ceil_mode)
        ow = caffe_pooled_size(w, kw, sw, pw, pool.ceil_mode)
        extra_h = max(0, (oh - 1) * sh + kh - (h + ph))
        extra_w = max(0, (ow - 1) * sw + kw - (w + pw))
        divisor = None
        if pool.method == "ave":
            div_h = _ave_divisor(h, kh, sh, ph, oh)
            div_w = _ave_divisor(w, kw, sw, pw, ow)
            divisor = div_h[:, None] * div_w[None, :]
        return cls("max" if pool.method == "max" else "sum", shape, (kh, kw), (sh, sw),
                   (pw, extra_w, ph, extra_h), -FLT_MAX if pool.method == "max" else 0.0,
                   (oh, ow), divisor)

    @classmethod
    def from_matconvnet(cls, pool: MatConvNetPool2d, shape: Sequence[int]) -> ExactPool2d:
        _, h, w = shape[-3:]
        t, b, left, right = pool.pad
        (kh, kw), (sh, sw) = pool.pool_size, pool.stride
        oh = (h + t + b - kh) // sh + 1
        ow = (w + left + right - kw) // sw + 1
        divisor = None
        if pool.method == "avg":
            ones = F.pad(torch.ones(1, 1, h, w), (left, right, t, b))
            divisor = F.avg_pool2d(ones, (kh, kw), (sh, sw), divisor_override=1)[0, 0]
        return cls("max" if pool.method == "max" else "sum", shape, (kh, kw), (sh, sw),
                   (left, right, t, b), -math.inf if pool.method == "max" else 0.0,
                   (oh, ow), divisor)

    def extra_repr(self) -> str:
        return (f"{self.method}, kernel={self.kernel}, stride={self.stride}, "
                f"pads(l,r,t,b)={self.pads}, fill={self.fill}, out={self.out_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads, value=self.fill)
        if self.method == "max":
            y = F.max_pool2d(x, self.kernel, self.stride)
        else:
            y = _sum_pool(x, self.ones, self.stride)
        if self.crop:
            y = y[..., : self.out_size[0], : self.out_size[1]]
        return y if self.divisor is None else y / self.divisor


def _direct_window_sum(sq: torch.Tensor, c: int, before: int, after: int) -> torch.Tensor:
    padded = F.pad(sq, (0, 0, 0, 0, before, after)) if before or after else sq
    out = padded[:, 0:c]
    for i in range(1, before + after + 1):
        out = out + padded[:, i : i + c]
    return out


def _running_window_sum(sq: torch.Tensor, c: int, before: int, after: int) -> torch.Tensor:
    if before >= c - 1 and after >= c - 1:  # every channel's window holds all channels
        return sq.double().sum(dim=1, keepdim=True).to(sq.dtype)
    padded = F.pad(sq.double(), (0, 0, 0, 0, before, after))
    csum = F.pad(torch.cumsum(padded, dim=1), (0, 0, 0, 0, 1, 0))
    width = before + after + 1
    return (csum[:, width : width + c] - csum[:, :c]).to(sq.dtype)


class ExactLRN(nn.Module):
    """``x * (shift + coef * window_sum(x^2)) ** -beta`` for a fixed channel count.

    Caffe ACROSS_CHANNELS: ``shift = k``, ``coef = alpha / size``, symmetric window.
    MatConvNet: ``shift = kappa``, ``coef = alpha``, window ``[c - floor((N-1)/2),
    c + ceil((N-1)/2)]``. Caffe WITHIN_CHANNEL: a spatial sum over ``size x size`` divided by
    ``size^2``, ``1 + alpha * mean``. The window sum takes the same path as
    :func:`porting.lrn.channel_window_sum` (direct adds up to 16 channels, float64 beyond).
    """

    def __init__(self, channels: int, before: int, after: int, shift: float, coef: float,
                 beta: float, within: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.before = min(before, channels - 1)
        self.after = min(after, channels - 1)
        self.shift, self.coef, self.beta = shift, coef, beta
        self.within = within
        if within:
            self.register_buffer("ones", torch.ones(channels, 1, within, within))

    @classmethod
    def from_caffe(cls, lrn: CaffeLRN, shape: Sequence[int]) -> ExactLRN:
        half = (lrn.local_size - 1) // 2
        if lrn.norm_region == "WITHIN_CHANNEL":
            return cls(shape[-3], half, half, 1.0, lrn.alpha, lrn.beta, within=lrn.local_size)
        return cls(shape[-3], half, half, lrn.k, lrn.alpha / lrn.local_size, lrn.beta)

    @classmethod
    def from_matconvnet(cls, lrn: MatConvNetLRN, shape: Sequence[int]) -> ExactLRN:
        n, kappa, alpha, beta = lrn.param
        return cls(shape[-3], (n - 1) // 2, n // 2, kappa, alpha, beta)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, window=[-{self.before}, +{self.after}], "
                f"shift={self.shift}, coef={self.coef}, beta={self.beta}, within={self.within}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sq = x * x
        if self.within:
            s, half = self.within, self.before
            total = _sum_pool(F.pad(sq, (half, half, half, half)), self.ones, (1, 1))
            scale = 1.0 + self.coef * (total / (s * s))
        else:
            if self.before + self.after + 1 <= 16:
                window = _direct_window_sum(sq, self.channels, self.before, self.after)
            else:
                window = _running_window_sum(sq, self.channels, self.before, self.after)
            scale = self.shift + self.coef * window
        return x * torch.pow(scale, -self.beta)


class ExactBatchNorm(nn.Module):
    """Test-time BatchNorm as ``(x - mean) / sigma [* mult + bias]`` with constant tensors."""

    def __init__(self, mean: torch.Tensor, sigma: torch.Tensor,
                 mult: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("sigma", sigma.detach().clone())
        self.register_buffer("mult", None if mult is None else mult.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def caffe(cls, mean_blob: torch.Tensor, var_blob: torch.Tensor, scale_factor: torch.Tensor,
              eps: float) -> ExactBatchNorm:
        """The constants :func:`porting.batchnorm.caffe_batch_norm` forms (global stats)."""
        with torch.no_grad():
            sf = scale_factor.reshape(-1)[0]
            factor = torch.where(sf == 0, torch.zeros_like(sf), 1.0 / sf)
            mean = mean_blob * factor
            sigma = torch.sqrt(var_blob * factor + eps)
        return cls(mean, sigma)

    @classmethod
    def matconvnet(cls, moments: torch.Tensor, mult: torch.Tensor,
                   bias: torch.Tensor) -> ExactBatchNorm:
        return cls(moments[:, 0], moments[:, 1], mult, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = (x - self.mean.view(shape)) / self.sigma.view(shape)
        if self.mult is None:
            return y
        return self.mult.view(shape) * y + self.bias.view(shape)


def _exact_replacement(module: nn.Module, shape: Sequence[int] | None) -> nn.Module | None:
    """The export-exact equivalent of one shared module (``None``: keep it as is)."""
    if isinstance(module, CaffePool2d):
        return ExactPool2d.from_caffe(module, shape)
    if isinstance(module, MatConvNetPool2d):
        return ExactPool2d.from_matconvnet(module, shape)
    if isinstance(module, CaffeLRN):
        return ExactLRN.from_caffe(module, shape)
    if isinstance(module, MatConvNetLRN):
        return ExactLRN.from_matconvnet(module, shape)
    if isinstance(module, CaffeBatchNorm):
        if not module._global():  # batch statistics at test time: exports as it is
            return None
        return ExactBatchNorm.caffe(module.mean, module.variance, module.scale_factor,
                                    module.eps)
    if isinstance(module, MatConvNetBatchNorm):
        return ExactBatchNorm.matconvnet(module.moments, module.mult, module.bias)
    return None


_NEEDS_SHAPE = (CaffePool2d, MatConvNetPool2d, CaffeLRN, MatConvNetLRN)
_REPLACED = _NEEDS_SHAPE + (CaffeBatchNorm, MatConvNetBatchNorm)


def exportable(net: nn.Module, *example: torch.Tensor) -> nn.Module:
    """Rewrite ``net`` in place for export and return it (eval mode).

    A probe run on ``example`` records each shared pooling/LRN module's input shape; every
    :mod:`porting.pooling` / :mod:`porting.lrn` / :mod:`porting.batchnorm` module is then
    swapped for its export-exact equivalent with that static geometry. A module seen with
    two different shapes cannot be fixed and raises :class:`ExportError`.
    """
    net.eval()
    shapes: dict[int, tuple[int, ...]] = {}
    dtypes: dict[int, torch.dtype] = {}
    names = {id(m): n for n, m in net.named_modules()}

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        shape = tuple(args[0].shape[1:])
        dtypes[id(module)] = args[0].dtype
        seen = shapes.setdefault(id(module), shape)
        if seen != shape:
            raise ExportError(f"module {names.get(id(module))!r} runs on inputs of shapes "
                              f"{seen} and {shape}; it cannot be given one static geometry")

    handles = [m.register_forward_pre_hook(hook) for m in net.modules()
               if isinstance(m, _NEEDS_SHAPE)]
    try:
        with torch.no_grad():
            net(*example)
    finally:
        for h in handles:
            h.remove()
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, _REPLACED):
                continue
            if isinstance(child, _NEEDS_SHAPE) and id(child) not in shapes:
                continue  # never runs for this output
            new = _exact_replacement(child, shapes.get(id(child)))
            if new is not None:
                if id(child) in dtypes:  # constants in the dtype the layer runs in
                    new = new.to(dtypes[id(child)])
                setattr(parent, child_name, new)
    return net.eval()


# --------------------------------------------------------------------------------------------
# Converted graphs in export mode
# --------------------------------------------------------------------------------------------

_MODULE_OPS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    # The same constructors as porting.graph.OPS uses for these ops.
    "caffe_pool": lambda a: CaffePool2d(
        a["method"], tuple(a.get("kernel", (1, 1))), tuple(a.get("stride", (1, 1))),
        tuple(a.get("pad", (0, 0))), a.get("global_pooling", False), a.get("ceil_mode", True)),
    "mcn_pool": lambda a: MatConvNetPool2d(
        a["method"], tuple(a["pool_size"]), tuple(a.get("stride", (1, 1))),
        tuple(a.get("pad", (0, 0, 0, 0)))),
    "caffe_lrn": lambda a: CaffeLRN(
        a["local_size"], a["alpha"], a["beta"], a.get("k", 1.0),
        a.get("norm_region", "ACROSS_CHANNELS")),
    "mcn_lrn": lambda a: MatConvNetLRN(tuple(a["param"])),
}


def batched_im2col_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          stride: tuple[int, int], pad: tuple[int, int, int, int],
                          dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """:func:`porting.conv.im2col_conv2d` without its per-image loop (which would fix the
    batch size in a trace): ``unfold`` then one GEMM per image and group, ``matmul``-batched.
    """
    t, b, left, r = pad
    xp = F.pad(x, (left, r, t, b)) if any(pad) else x
    h, w = xp.shape[-2:]
    o, ci, kh, kw = weight.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    wg = weight.reshape(groups, o // groups, ci * kh * kw)
    cols = F.unfold(xp, (kh, kw), dilation=dilation, stride=stride)
    cols = cols.reshape(-1, groups, ci * kh * kw, oh * ow)
    y = torch.matmul(wg, cols).reshape(-1, o, oh, ow)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def _im2col_op(x, a, p):
    """The graph's ``conv`` op with ``algorithm: im2col``, batch-agnostic."""
    inp = x[0]
    if inp.dim() == 2:
        inp = inp[:, :, None, None]
    w = p["weight"]
    groups = a.get("groups") or max(1, inp.shape[1] // w.shape[1])
    return [batched_im2col_conv2d(inp, w, p.get("bias"), tuple(a.get("stride", (1, 1))),
                                  tuple(a.get("pad", (0, 0, 0, 0))),
                                  tuple(a.get("dilation", (1, 1))), groups)]


class GraphProgram(nn.Module):
    """The part of a :class:`~porting.graph.GraphModule` that computes ``outputs``, in a
    form that traces to a dynamic-batch graph: inputs by position (only those needed), test
    mode (dropout is the identity), im2col convolutions as plain ones, BatchNorm as
    constants, pooling/LRN as the shared modules (made exact by :func:`exportable`).

    Caffe convolutions marked ``algorithm: im2col`` run as ONNX ``Conv`` when ``im2col`` is
    False (the ONNX export: a standard op; the reference runtime computes it as im2col + GEMM
    too) and as :func:`batched_im2col_conv2d` when True (TorchScript: the same unfold + GEMM
    as the PyTorch graph, so the float32 rounding stays Caffe's).
    """

    def __init__(self, graph: GraphModule, outputs: Sequence[str], im2col: bool = True) -> None:
        super().__init__()
        self.im2col = im2col
        known = set(graph.var_names())
        missing = [v for v in outputs if v not in known]
        if missing:
            raise ExportError(f"the graph has no variable(s) {missing}")
        self.outputs = list(outputs)
        needed = graph.needed(set(outputs))
        self.feeds = [v for v in graph.inputs if v in needed]
        self.steps: list[tuple[dict[str, Any], str | None]] = []
        self.layer_modules = nn.ModuleDict()
        used: set[str] = set()
        for i, layer in enumerate(graph.layers):
            if not any(o in needed for o in layer["outputs"]):
                continue
            op, attrs, slots = layer["op"], layer.get("attrs", {}), layer.get("params", {})
            module: nn.Module | None = None
            if op in _MODULE_OPS:
                module = _MODULE_OPS[op](attrs)
            elif op in ("dropout", "identity") and len(layer["outputs"]) == 1:
                module = nn.Identity()
            elif op == "mcn_bn":
                p = {s: graph.params[k] for s, k in slots.items()}
                module = ExactBatchNorm.matconvnet(p["moments"], p["mult"], p["bias"])
            elif op == "caffe_bn" and attrs.get("use_global_stats") is not False:
                p = {s: graph.params[k] for s, k in slots.items()}
                module = ExactBatchNorm.caffe(p["mean"], p["variance"], p["scale_factor"],
                                              attrs.get("eps", 1e-5))
            else:
                if op not in OPS:
                    raise ExportError(f"layer {layer['name']!r} ({layer['type']}): no op {op!r}")
                used.update(slots.values())
            key = None
            if module is not None:
                key = f"l{i}"
                self.layer_modules[key] = module
            self.steps.append((layer, key))
        self.params = nn.ParameterDict({k: nn.Parameter(graph.params[k].detach().clone(),
                                                        requires_grad=False)
                                        for k in sorted(used)})
        last: dict[str, int] = {}
        for j, (layer, _) in enumerate(self.steps):
            for v in layer["inputs"]:
                last[v] = j
        self._last = last

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        env = dict(zip(self.feeds, inputs, strict=True))
        keep = set(self.outputs)
        for j, (layer, key) in enumerate(self.steps):
            xs = [env[v] for v in layer["inputs"]]
            if key is not None:
                ys = [self.layer_modules[key](xs[0])]
            else:
                attrs = layer.get("attrs", {})
                p = {slot: self.params[k] for slot, k in layer.get("params", {}).items()}
                if layer["op"] == "conv" and attrs.get("algorithm") == "im2col":
                    if self.im2col:
                        ys = _im2col_op(xs, attrs, p)
                    else:
                        attrs = {k: v for k, v in attrs.items() if k != "algorithm"}
                        ys = OPS["conv"](xs, attrs, p, False)
                else:
                    ys = OPS[layer["op"]](xs, attrs, p, False)
            for name, y in zip(layer["outputs"], ys, strict=False):
                env[name] = y
            for v in layer["inputs"]:
                if self._last.get(v) == j and v not in keep:
                    env.pop(v, None)
        out = tuple(env[v] for v in self.outputs)
        return out[0] if len(out) == 1 else out


# --------------------------------------------------------------------------------------------
# The exported networks
# --------------------------------------------------------------------------------------------


class _CanonicalTrunk(nn.Module):
    """A canonical model's feature map: ``SiameseReID.features`` or a backbone's output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from porting.validation.extract import feature_map

        return feature_map(self.model, x)


class EmbedNet(nn.Module):
    """``features`` -> the recipe's descriptor: per-position L2, spatial sum, flip, L2.

    With ``flip_input=True`` the flipped pass takes a second input (the preprocessed flipped
    image; needed when flipping does not commute with the preprocessing, e.g. a mean image),
    otherwise the batch is flipped left-right in the graph.
    """

    def __init__(self, features: nn.Module, recipe: Recipe, flip_input: bool = False) -> None:
        super().__init__()
        self.features = features
        self.recipe = recipe
        self.flip_input = bool(flip_input and recipe.flip)
        self.batch_flip = False  # set by build_export when the features are per item
        # The LRN-as-L2 of porting.recipes; a module so that exportable() can fix it.
        self.position_l2 = MatConvNetLRN((4096, 0.0, 1.0, 0.5)) if recipe.position_l2 else None

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.dim() == 2:
            return fmap
        if self.position_l2 is not None:
            if fmap.shape[1] > 2048:
                raise ExportError("the LRN-as-L2 trick [4096 0 1 0.5] needs at most 2048 "
                                  "channels")
            fmap = self.position_l2(fmap)
        return fmap.sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, x_flipped: torch.Tensor | None = None) -> torch.Tensor:
        if not self.recipe.flip:
            f = self._pool(self.features(x))
        else:
            xf = x_flipped if self.flip_input else torch.flip(x, dims=[3])
            if self.batch_flip:
                both = self._pool(self.features(torch.cat([x, xf])))
                both = both.reshape(2, -1, both.shape[-1])
                f = both[0] + both[1]
            else:
                f = self._pool(self.features(x)) + self._pool(self.features(xf))
        return l2_normalize(f) if self.recipe.l2 else f


class SiameseNet(nn.Module):
    """Two batches -> the three logit maps (identity 1, identity 2, verification)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.body(x1, x2))


# --------------------------------------------------------------------------------------------
# What to export, and the PyTorch reference it must match
# --------------------------------------------------------------------------------------------


def _describe(model: nn.Module) -> str:
    arch = getattr(model, "checkpoint_arch", None)
    if isinstance(model, GraphModule):
        src = (getattr(model, "checkpoint_source", None) or {}).get("file")
        what = " ".join(x for x in (model.graph.get("framework"), arch, "graph") if x)
        return (f"a converted {what}" + (f" from {src}" if src else "")
                + f" with input(s) {model.inputs} and output(s) {model.default_outputs}")
    return f"a canonical {type(model).__name__}"


def _siamese_vars(graph: GraphModule) -> tuple[list[str], list[str]]:
    """(the two image inputs, the three logit maps) of a converted two-stream graph."""
    heads = [layer for layer in graph.layers if layer["op"] == "softmax_loss"]
    labels = {layer["inputs"][1] for layer in graph.layers
              if layer["op"] in ("softmax_loss", "class_error", "accuracy", "topk_error")
              and len(layer["inputs"]) > 1}
    logits = [layer["inputs"][0] for layer in heads] if heads else list(graph.default_outputs)
    images = [v for v in graph.inputs if v not in labels and v in graph.needed(set(logits))]
    if len(logits) != 3 or len(images) != 2:
        raise ExportError(
            f"--what siamese needs the two-stream net (two images -> three logit maps); the "
            f"checkpoint is {_describe(graph)}")
    return images, logits


def _feature_var(model: GraphModule, feature_var: str | None) -> str:
    var = feature_var or (getattr(model, "checkpoint_meta", None) or {}).get("feature_var")
    if not var:
        raise ExportError("the checkpoint does not say which variable is the feature "
                          "(meta.feature_var); pass --feature-var")
    if var not in model.var_names():
        raise ExportError(f"feature variable {var!r} is not in the graph")
    return str(var)


class Spec:
    """An export request resolved against a model: the net to trace, names, reference."""

    def __init__(self, net: nn.Module, reference: Callable[..., tuple[torch.Tensor, ...]],
                 input_names: list[str], output_names: list[str], info: dict[str, Any]) -> None:
        self.net, self.reference = net, reference
        self.input_names, self.output_names, self.info = input_names, output_names, info


def build_export(model: nn.Module, what: str, example: Sequence[torch.Tensor], *,
                 recipe: str | None = None, feature_var: str | None = None,
                 rewrite: bool = True) -> Spec:
    """Resolve ``what`` (``embed`` / ``siamese``) for ``model`` (as :func:`porting.load`
    returns it) and rewrite it for export with ``example`` (batch 1) as the probe input.

    For ``embed``, ``example`` holds one batch, or two (image, flipped image) when the recipe
    flips and the flip must be fed (see :class:`EmbedNet`). ``rewrite=False`` skips the
    rewrite (only the reference is wanted).
    """
    from porting.models import SiameseReID
    from porting.validation.extract import feature_map

    model = model.eval()
    info: dict[str, Any] = {"what": what, "model": _describe(model)}
    if what == "siamese":
        if isinstance(model, GraphModule):
            images, logits = _siamese_vars(model)
            body = GraphProgram(model, logits)
            if body.feeds != images:
                raise ExportError(f"the logit maps need inputs {body.feeds}, expected {images}")

            def reference(x1, x2):
                out = model(**{images[0]: x1, images[1]: x2}, outputs=logits)
                return tuple(out[v] for v in logits)
            names_in, names_out = images, logits
        elif isinstance(model, SiameseReID):
            body = copy.deepcopy(model)

            def reference(x1, x2):
                return tuple(model(x1, x2))
            names_in = ["data", "data_2"]
            names_out = ["prediction", "prediction_2", "dist_prediction"]
        else:
            raise ExportError(f"--what siamese needs the two-stream net; the checkpoint is "
                              f"{_describe(model)}")
        net = SiameseNet(body)
    elif what == "embed":
        name = recipe or getattr(model, "recipe", None)
        if not name:
            raise ExportError("the checkpoint names no descriptor recipe; pass --recipe")
        try:
            rec = get_recipe(name)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        flip_input = len(example) > 1
        if isinstance(model, GraphModule):
            var = _feature_var(model, feature_var)
            features: nn.Module = GraphProgram(model, [var])
            if len(features.feeds) != 1:
                raise ExportError(f"feature {var!r} depends on {len(features.feeds)} inputs "
                                  f"{features.feeds}; an embedding takes one")
            info["feature_var"] = var
            first = features.feeds[0]
        else:
            features = _CanonicalTrunk(copy.deepcopy(model))
            first = "data"

        def reference(x, xf=None):
            with torch.no_grad():
                if isinstance(model, SiameseReID) and not flip_input:
                    return (model.embed(x, rec.name),)
                f = pool_positions(feature_map(model, x, feature_var), rec)
                if rec.flip:
                    xf = torch.flip(x, dims=[3]) if xf is None else xf
                    f = f + pool_positions(feature_map(model, xf, feature_var), rec)
                return (l2_normalize(f) if rec.l2 else f,)
        net = EmbedNet(features, rec, flip_input)
        names_in = [first] + ([f"{first}_flipped"] if flip_input else [])
        names_out = ["descriptor"]
        info.update(recipe=rec.name, flip="input" if flip_input else
                    ("in-graph" if rec.flip else "none"))
    else:
        raise ExportError(f"--what must be 'embed' or 'siamese', got {what!r}")
    if not rewrite:
        return Spec(net, reference, names_in, names_out, info)
    try:
        set_im2col(net, False)  # the probe only needs shapes: the fast convolution will do
        exportable(net, *example)
        set_im2col(net, True)
    except ExportError:
        raise
    except (RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"cannot run the model on a {tuple(example[0].shape)} input: "
                          f"{msg}") from None
    for p in net.parameters():
        p.requires_grad_(False)
    if isinstance(net, EmbedNet) and net.recipe.flip:
        # One trunk pass on [x; flipped x] (half the graph) unless a layer mixes the batch.
        net.batch_flip = _batch_independent(net)
        info["flip_batched"] = net.batch_flip
    return Spec(net, reference, names_in, names_out, info)


_BATCH_MIXING_OPS = {"pair_split_square", "pair_same_label", "softmax_loss", "class_error",
                     "accuracy", "topk_error"}


def _batch_independent(net: nn.Module) -> bool:
    """True when every item's output depends on that item only (test-time statistics)."""
    for m in net.modules():
        if isinstance(m, CaffeBatchNorm | MatConvNetBatchNorm):  # left as is: batch stats
            return False
        if isinstance(m, GraphProgram):
            for layer, key in m.steps:
                if layer["op"] in _BATCH_MIXING_OPS or (layer["op"] == "caffe_bn"
                                                        and key is None):
                    return False
    return True


def double_export(model: nn.Module, what: str, example: Sequence[torch.Tensor],
                  rewrite: bool = True, **kwargs: Any) -> Spec:
    """:func:`build_export` of a float64 copy of ``model`` (constants computed in float64)."""
    spec = build_export(copy.deepcopy(model).double(), what, [e.double() for e in example],
                        rewrite=rewrite, **kwargs)
    spec.net.double()
    return spec


# --------------------------------------------------------------------------------------------
# Export + check
# --------------------------------------------------------------------------------------------


def max_rel_err(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    """``max|ours - ref| / max|ref|`` (the measure every issue reports)."""
    a = np.asarray(ours.detach().cpu() if isinstance(ours, torch.Tensor) else ours, np.float64)
    b = np.asarray(ref.detach().cpu() if isinstance(ref, torch.Tensor) else ref, np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return math.inf
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _dynamic_axes(spec: Spec) -> dict[str, dict[int, str]]:
    return {n: {0: "batch"} for n in spec.input_names + spec.output_names}


def _quietly(fn: Callable[[], Any]) -> Any:
    """Run a trace/save/load without the exporters' deprecation and tracer warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return fn()


def set_im2col(net: nn.Module, im2col: bool) -> None:
    """Choose how Caffe's im2col convolutions are traced (see :class:`GraphProgram`)."""
    for m in net.modules():
        if isinstance(m, GraphProgram):
            m.im2col = im2col


class ParityCheck:
    """What an exported file is checked against, and the pass rule.

    ``check`` (float32; batch 2 exercises the dynamic batch axis of a file traced with batch
    1) runs through the file and through the unmodified PyTorch model. Per output:

    * ``fp32``: ``max|file - pytorch| / max|pytorch|``, the number the issue asks for;
    * ``fp64`` (when ``fp64_graph``): the same exported graph built from the model in
      float64 (ONNX: run by the reference evaluator; TorchScript: the rewritten module) vs
      the PyTorch model in float64. Free of float32 rounding, it shows any approximation in
      the export (a wrong divisor, eps added twice, a shifted LRN window) even where it would
      hide below the float32 tolerance; it must be <= ``FP64_TOLERANCE``;
    * only where ``fp32`` exceeds the tolerance: ``file_fp32_vs_fp64`` and
      ``pytorch_fp32_vs_fp64``, the float32 errors of the file and of PyTorch itself against
      the float64 PyTorch result. Such an output (the verification head's cancellation
      makes its float32 value ill-conditioned) passes if the file is as accurate as PyTorch
      is: ``file_fp32_vs_fp64 <= max(tolerance, 2 * pytorch_fp32_vs_fp64)``.

    ``double(rewrite)`` builds the float64 export (see :func:`double_export`); it is called
    only when needed: with ``rewrite=True`` for ``fp64_graph``, else with ``rewrite=False``
    for the float64 reference alone.
    """

    def __init__(self, spec: Spec, check: Sequence[torch.Tensor],
                 double: Callable[[bool], Spec] | None = None,
                 tolerance: float = TOLERANCE, fp64_graph: bool = True) -> None:
        self.spec, self.tolerance = spec, tolerance
        self._double = double
        self.fp64_graph = fp64_graph and double is not None
        self.spec64 = double(True) if self.fp64_graph else None
        self.check = [c.float().contiguous() for c in check]
        self.check64 = [c.double() for c in self.check]
        self.ref = _quietly(lambda: spec.reference(*self.check))
        self._ref64: tuple[torch.Tensor, ...] | None = None

    @property
    def ref64(self) -> tuple[torch.Tensor, ...] | None:
        if self._ref64 is None and self._double is not None:
            spec64 = self.spec64 if self.spec64 is not None else self._double(False)
            self._ref64 = _quietly(lambda: spec64.reference(*self.check64))
        return self._ref64

    def report(self, runner: str, got: Sequence[Any], got64: Sequence[Any] | None,
               ) -> dict[str, Any]:
        per: dict[str, dict[str, float]] = {}
        passed, limited = True, []
        for i, n in enumerate(self.spec.output_names):
            row = {"fp32": max_rel_err(got[i], self.ref[i])}
            if got64 is not None:
                row["fp64"] = max_rel_err(got64[i], self.ref64[i])
                passed &= row["fp64"] <= FP64_TOLERANCE
            if row["fp32"] > self.tolerance:
                ok = False
                if self.ref64 is not None:
                    row["file_fp32_vs_fp64"] = max_rel_err(got[i], self.ref64[i])
                    row["pytorch_fp32_vs_fp64"] = max_rel_err(self.ref[i], self.ref64[i])
                    ok = row["file_fp32_vs_fp64"] <= max(self.tolerance,
                                                         2 * row["pytorch_fp32_vs_fp64"])
                if ok:
                    limited.append(n)
                passed &= ok
            per[n] = row
        out: dict[str, Any] = {
            "runner": runner, "batch": int(self.check[0].shape[0]),
            "max_rel_err": max(r["fp32"] for r in per.values()),
            "tolerance": self.tolerance, "per_output": per, "passed": bool(passed),
            "conditioning_limited": limited,
        }
        if got64 is not None:
            out["max_rel_err_fp64"] = max(r["fp64"] for r in per.values())
            out["fp64_tolerance"] = FP64_TOLERANCE
        return out


def _onnx_bytes(spec: Spec, example: Sequence[torch.Tensor], opset: int) -> bytes:
    set_im2col(spec.net, False)
    buf = io.BytesIO()
    _quietly(lambda: torch.onnx.export(
        spec.net, tuple(example), buf, dynamo=False, opset_version=opset,
        input_names=spec.input_names, output_names=spec.output_names,
        dynamic_axes=_dynamic_axes(spec), do_constant_folding=True))
    return buf.getvalue()


def _run_onnx(model: Any, spec: Spec, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    import onnx
    from onnx.reference import ReferenceEvaluator

    onnx.checker.check_model(model, full_check=True)
    feeds = {n: t.numpy() for n, t in zip(spec.input_names, inputs, strict=True)}
    return ReferenceEvaluator(model).run(None, feeds)


def export_onnx(spec: Spec, example: Sequence[torch.Tensor], check: ParityCheck,
                out: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Trace ``spec.net`` on ``example`` (batch 1), run the model through
    :func:`onnx.checker.check_model` and :class:`onnx.reference.ReferenceEvaluator` on the
    check batches, and write ``out`` atomically if :class:`ParityCheck` passes (raises
    :class:`ParityError` otherwise). Returns the check report."""
    import onnx

    proto = onnx.load_from_string(_onnx_bytes(spec, example, opset))
    proto.doc_string = "reid-porting export: " + json.dumps(spec.info, sort_keys=True)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    got64 = None
    if check.fp64_graph:
        ex64 = [e.double() for e in example]
        proto64 = onnx.load_from_string(_onnx_bytes(check.spec64, ex64, opset))
        got64 = _run_onnx(proto64, check.spec64, check.check64)
    report: dict[str, Any] = {}

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)
        model = onnx.load(tmp)
        report.update(check.report("onnx.reference.ReferenceEvaluator",
                                   _run_onnx(model, spec, check.check), got64))
        report["ops"] = sorted({n.op_type for n in model.graph.node})
        if not report["passed"]:
            raise ParityError(report)

    atomic_write(out, write)
    report["sha256"] = hashlib.sha256(data).hexdigest()
    return report


def export_torchscript(spec: Spec, example: Sequence[torch.Tensor], check: ParityCheck,
                       out: str | os.PathLike, *, extra: dict[str, str] | None = None,
                       ) -> dict[str, Any]:
    """``torch.jit.trace`` on ``example`` (batch 1), save, ``torch.jit.load``, run the check
    batches; written atomically only if :class:`ParityCheck` passes."""
    set_im2col(spec.net, True)
    traced = _quietly(lambda: torch.jit.trace(spec.net, tuple(example), check_trace=False))
    got64 = None
    if check.fp64_graph:  # the rewritten module that was traced, in float64
        set_im2col(check.spec64.net, True)
        got64 = _as_tuple(_quietly(lambda: check.spec64.net(*check.check64)))
    report: dict[str, Any] = {}

    def write(tmp: str) -> None:
        _quietly(lambda: torch.jit.save(traced, tmp, _extra_files=extra or {}))
        loaded = _quietly(lambda: torch.jit.load(tmp, map_location="cpu"))
        with torch.jit.optimized_execution(False):  # one run: skip the JIT's fusion passes
            got = _as_tuple(_quietly(lambda: loaded(*check.check)))
        report.update(check.report("torch.jit.load", got, got64))
        if not report["passed"]:
            raise ParityError(report)

    atomic_write(out, write)
    report["sha256"] = sha256_file(out)
    return report


def _as_tuple(y: Any) -> tuple[Any, ...]:
    return y if isinstance(y, tuple) else (y,)


class ParityError(RuntimeError):
    """The exported file does not reproduce PyTorch (nothing was written)."""

    def __init__(self, report: dict[str, Any]) -> None:
        worst = ", ".join(f"{k} fp32 {v['fp32']:.3g}" + (f" fp64 {v['fp64']:.3g}"
                                                         if "fp64" in v else "")
                          for k, v in report["per_output"].items())
        super().__init__(f"{report['runner']} vs PyTorch: {worst} (tolerance "
                         f"{report['tolerance']:g}, fp64 {FP64_TOLERANCE:g})")
        self.report = report


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export",
        description="Export a reid-porting checkpoint to ONNX or TorchScript; the result is "
                    "run (onnx.reference.ReferenceEvaluator / torch.jit.load) and compared "
                    "with PyTorch before it is written.")
    p.add_argument("checkpoint", help="a checkpoint written by convert-caffe, "
                                      "convert-matconvnet or train")
    p.add_argument("--onnx", metavar="OUT", help="write an ONNX model")
    p.add_argument("--torchscript", metavar="OUT", help="write a TorchScript module")
    p.add_argument("--what", choices=("embed", "siamese"), default="embed",
                   help="embed: image batch -> descriptor (default); siamese: two image "
                        "batches -> the three logit maps of the two-stream net")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset ({MIN_OPSET}-{_max_opset()}, default {DEFAULT_OPSET})")
    p.add_argument("--recipe", help="descriptor recipe (default: the checkpoint's)")
    p.add_argument("--feature-var", help="graph variable of the feature "
                                         "(default: the checkpoint's meta.feature_var)")
    p.add_argument("--canonical", action="store_true",
                   help="export the canonical porting.models class instead of the graph")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="input size (default: the checkpoint's preprocessing input_size)")
    p.add_argument("--input", action="append", metavar="FILE",
                   help="check input: .npy/.npz (N,3,H,W) or an image file (preprocessed "
                        "with the checkpoint's preprocessing); twice for --what siamese. "
                        "Default: 2 seeded uniform(-128, 128) batches")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help=f"max relative error allowed (default {TOLERANCE:g})")
    p.add_argument("--fp32-only", action="store_true",
                   help="skip the float64 run of the exported graph (the check that it "
                        "computes exactly what the PyTorch model does)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def _max_opset() -> int:
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
        return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except ImportError:  # pragma: no cover - older torch
        return 17


def _load_array(path: str, index: int) -> np.ndarray:
    """An (N, 3, H, W) array from a .npy, or the ``index``-th 4-D array of a .npz."""
    try:
        if path.endswith(".npz"):
            with np.load(path) as z:
                arrays = [z[k] for k in z.files if not k.startswith("__") and z[k].ndim == 4]
            if not arrays:
                raise ExportError(f"{path}: no (N, 3, H, W) array in it")
            return arrays[min(index, len(arrays) - 1)]
        arr = np.load(path)
    except (ValueError, OSError) as exc:
        raise ExportError(f"{path}: not a readable .npy/.npz array ({exc})") from None
    return arr[None] if arr.ndim == 3 else arr


def _check_inputs(files: Sequence[str], model: nn.Module, n_streams: int, flip_input: bool,
                  size: tuple[int, int] | None) -> list[torch.Tensor]:
    """The check batches: one per stream, then the flipped images if the graph takes them.

    ``files``: .npy/.npz arrays (used as given) or images (the checkpoint's preprocessing
    of the image and of its mirror image: a batch of 2). None: seeded uniform(-128, 128)
    batches of 2 at ``size``.
    """
    if files and len(files) not in (1, n_streams):
        raise ExportError(f"give {n_streams} --input file(s), got {len(files)}")
    if not files:
        if size is None:
            raise ExportError("the checkpoint has no preprocessing input_size; pass --size H W")
        return [torch.from_numpy(np.random.RandomState(s).uniform(-128, 128, (2, 3, *size))
                                 .astype(np.float32))
                for s in range(n_streams + int(flip_input))]
    out: list[torch.Tensor] = []
    flipped: list[torch.Tensor] = []
    for s in range(n_streams):
        path = str(files[min(s, len(files) - 1)])
        if not os.path.isfile(path):
            raise ExportError(f"{path}: no such file")
        if path.endswith((".npy", ".npz")):
            x = torch.from_numpy(np.ascontiguousarray(_load_array(path, s), dtype=np.float32))
            xf = torch.flip(x, dims=[3]) if x.dim() == 4 else x
        else:
            from porting.preprocess import Preprocess

            spec = getattr(model, "preprocess_spec", None)
            if not spec:
                raise ExportError("the checkpoint has no preprocessing to read an image with; "
                                  "pass a .npy input")
            pre = Preprocess.from_dict(spec)
            try:
                x = torch.stack([pre(path), pre(path, flip=True)])
            except (OSError, ValueError) as exc:
                raise ExportError(f"{path}: {exc}") from None
            xf = x.flip(0)  # the mirror of each item, as the checkpoint's preprocessing makes it
        if x.dim() != 4 or x.shape[1] != 3:
            raise ExportError(f"{path}: expected an (N, 3, H, W) array, got {tuple(x.shape)}")
        if size is not None and tuple(x.shape[2:]) != tuple(size):
            raise ExportError(f"{path}: the input is {tuple(x.shape[2:])}, --size is "
                              f"{tuple(size)}")
        if out and x.shape[1:] != out[0].shape[1:]:
            raise ExportError(f"the --input files differ in shape: {tuple(out[0].shape)} vs "
                              f"{tuple(x.shape)}")
        out.append(x)
        flipped.append(xf)
    return out + (flipped[:1] if flip_input else [])


def _flip_needs_input(model: nn.Module, recipe: str | None) -> bool:
    """True when the recipe flips and flipping the tensor differs from flipping the image."""
    from porting.preprocess import Preprocess
    from porting.validation.extract import flip_commutes

    name = recipe or getattr(model, "recipe", None)
    spec = getattr(model, "preprocess_spec", None)
    if not name or not spec:
        return False
    try:
        rec = get_recipe(name)
    except ValueError:
        return False
    return rec.flip and not flip_commutes(Preprocess.from_dict(spec))


def run(args: argparse.Namespace) -> int:
    import porting
    from porting.loading import model_from_checkpoint

    if not args.onnx and not args.torchscript:
        raise ExportError("nothing to do: give --onnx OUT and/or --torchscript OUT")
    if args.onnx and not MIN_OPSET <= args.opset <= _max_opset():
        raise ExportError(f"--opset must be in {MIN_OPSET}..{_max_opset()}, got {args.opset}")
    if not args.tolerance > 0:
        raise ExportError(f"--tolerance must be positive, got {args.tolerance}")
    ckpt = load_checkpoint(args.checkpoint)
    try:
        model = model_from_checkpoint(ckpt, canonical=True if args.canonical else None)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{args.checkpoint}: cannot build the model ({msg})") from None
    model.checkpoint_arch = (ckpt.get("arch") or {}).get("name")
    pre = ckpt.get("preprocess") or {}
    size = tuple(args.size) if args.size else None
    if size is None and not args.input and pre.get("input_size"):
        size = tuple(pre["input_size"])
    n_streams = 2 if args.what == "siamese" else 1
    flip_input = args.what == "embed" and _flip_needs_input(model, args.recipe)
    check = _check_inputs(args.input or [], model, n_streams, flip_input, size)
    example = [c[:1].clone() for c in check]
    spec = build_export(model, args.what, example, recipe=args.recipe,
                        feature_var=args.feature_var)
    parity = ParityCheck(spec, check, lambda rewrite: double_export(
        model, args.what, example, rewrite, recipe=args.recipe, feature_var=args.feature_var),
        args.tolerance, fp64_graph=not args.fp32_only)
    meta = {
        "reid_porting.version": porting.__version__,
        "reid_porting.what": args.what,
        "reid_porting.info": json.dumps(spec.info, sort_keys=True),
        "reid_porting.preprocess": json.dumps(ckpt.get("preprocess")),
        "reid_porting.recipe": str(spec.info.get("recipe", ckpt.get("recipe"))),
        "reid_porting.checkpoint_sha256": sha256_file(args.checkpoint),
    }
    shapes = {n: ["batch", *list(t.shape[1:])] for n, t in zip(spec.input_names, check,
                                                                strict=True)}
    jobs: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = []
    if args.onnx:
        jobs.append(("onnx", args.onnx, lambda out: export_onnx(
            spec, example, parity, out, opset=args.opset, metadata=meta)))
    if args.torchscript:
        jobs.append(("torchscript", args.torchscript, lambda out: export_torchscript(
            spec, example, parity, out,
            extra={"reid_porting.json": json.dumps(meta, sort_keys=True)})))
    status = 0
    for kind, out, fn in jobs:
        try:
            report = fn(out)
        except ParityError as exc:
            print(f"export: {kind} parity check FAILED, {out} not written: {exc}",
                  file=sys.stderr)
            status = 1
            continue
        full = {
            "format": kind, "file": os.path.basename(out), "checkpoint": str(args.checkpoint),
            **({"opset": args.opset} if kind == "onnx" else {}),
            "inputs": shapes, "outputs": spec.output_names, **spec.info,
            "check": {k: v for k, v in report.items() if k != "sha256"},
            "sha256": report["sha256"],
            "metadata": {k: v for k, v in meta.items() if k != "reid_porting.preprocess"},
            "preprocess": _preprocess_summary(ckpt.get("preprocess")),
            "versions": {"torch": torch.__version__, "reid_porting": porting.__version__,
                         **({"onnx": _onnx_version()} if kind == "onnx" else {})},
        }
        text = json.dumps(full, indent=1, sort_keys=True)
        atomic_write(f"{out}.json", lambda tmp, text=text: Path(tmp).write_text(text + "\n"))
        if not args.quiet:
            print(_summary(out, kind, args.what, shapes, report))
    return status


def _summary(out: str, kind: str, what: str, shapes: dict[str, Any],
             report: dict[str, Any]) -> str:
    line = (f"export: wrote {out} ({kind}, {what}, input "
            f"{', '.join(f'{n} {s}' for n, s in shapes.items())}); {report['runner']} vs "
            f"PyTorch, batch {report['batch']}: max rel err {report['max_rel_err']:.3g}")
    if "max_rel_err_fp64" in report:
        line += f" (float64 graph: {report['max_rel_err_fp64']:.3g})"
    for name in report["conditioning_limited"]:
        row = report["per_output"][name]
        line += (f"; {name}: {row['fp32']:.3g} > {report['tolerance']:g}, ill-conditioned in "
                 f"float32: vs float64 the file is off by {row['file_fp32_vs_fp64']:.3g}, "
                 f"PyTorch itself by {row['pytorch_fp32_vs_fp64']:.3g}")
    return line + f"; report {out}.json"


def _preprocess_summary(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint's preprocessing for the report; a mean image is summarised (the
    exported ONNX model carries it in full in its metadata)."""
    if not spec:
        return None
    out = dict(spec)
    mean = np.asarray(out.get("mean"))
    if mean.ndim == 3:
        out["mean"] = f"{mean.shape[0]}x{mean.shape[1]}x3 mean image (channel means "\
                      f"{[round(float(v), 4) for v in mean.reshape(-1, 3).mean(0)]})"
    return out


def _onnx_version() -> str:
    import onnx
    return onnx.__version__


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (ExportError, CheckpointError) as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"export: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
