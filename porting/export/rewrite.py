"""Export mode: a module or a converted graph rewritten with the layers' exact export forms.

Several layers have no one-to-one ONNX counterpart at their general, shape-dependent form;
each layer module of :mod:`porting.layers` says what it exports as (``export_form``), with
the static geometry of the input size seen in a probe run. Nothing here computes a layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from porting.graph import MODULE_OPS, OPS, GraphModule
from porting.layers import FrozenBatchNorm, caffe_global_stats


class ExportError(ValueError):
    """A checkpoint or request that cannot be exported (one-line message)."""


def _has_export_form(module: nn.Module) -> bool:
    return callable(getattr(type(module), "export_form", None))


def exportable(net: nn.Module, *example: torch.Tensor) -> nn.Module:
    """Rewrite ``net`` in place for export and return it (eval mode).

    A probe run on ``example`` records the input shape of every layer that has an export
    form; each is then swapped for ``layer.export_form(shape)``, in the dtype it ran in. A
    layer seen with two different shapes cannot be given one static geometry and raises
    :class:`ExportError`; layers that never run for these outputs are left as they are.
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

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if _has_export_form(m)]
    try:
        with torch.no_grad():
            net(*example)
    finally:
        for h in handles:
            h.remove()
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if not _has_export_form(child) or id(child) not in shapes:
                continue
            new = child.export_form(shapes[id(child)])
            if new is not child:
                setattr(parent, child_name, new.to(dtypes[id(child)]))
    return net.eval()


class GraphProgram(nn.Module):
    """The part of a :class:`~porting.graph.GraphModule` that computes ``outputs``, in a
    form that traces to a dynamic-batch graph: inputs by position (only those needed), test
    mode (dropout is the identity), BatchNorm as its frozen constants, pooling/LRN as the
    layer modules (made exact by :func:`exportable`).

    Caffe graphs computing convolutions as im2col run them as ONNX ``Conv`` when ``im2col``
    is False (the ONNX export: a standard op; the reference runtime computes it as im2col +
    GEMM too) and as the graph's own batched im2col when True (TorchScript: the float32
    rounding stays Caffe's).
    """

    def __init__(self, graph: GraphModule, outputs: Sequence[str], im2col: bool = True) -> None:
        super().__init__()
        self.im2col = im2col
        self.conv = graph.conv
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
            module = self._module(graph, layer)
            if module is None:
                if layer["op"] not in OPS:
                    raise ExportError(f"layer {layer['name']!r} ({layer['type']}): no op "
                                      f"{layer['op']!r}")
                used.update(layer.get("params", {}).values())
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

    @staticmethod
    def _module(graph: GraphModule, layer: dict[str, Any]) -> nn.Module | None:
        """The layer as a module (``None``: run its graph op)."""
        op, attrs = layer["op"], layer.get("attrs", {})
        p = {s: graph.params[k] for s, k in layer.get("params", {}).items()}
        if op in MODULE_OPS:
            return MODULE_OPS[op](attrs)
        if op in ("dropout", "identity") and len(layer["outputs"]) == 1:
            return nn.Identity()
        if op == "mcn_bn":
            return FrozenBatchNorm(p["moments"][:, 0], p["moments"][:, 1], p["mult"], p["bias"])
        if op == "caffe_bn" and attrs.get("use_global_stats") is not False:
            with torch.no_grad():
                return FrozenBatchNorm(*caffe_global_stats(
                    p["mean"], p["variance"], p["scale_factor"], attrs.get("eps", 1e-5)))
        return None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        env = dict(zip(self.feeds, inputs, strict=True))
        keep = set(self.outputs)
        conv = self.conv if self.im2col else "native"
        for j, (layer, key) in enumerate(self.steps):
            xs = [env[v] for v in layer["inputs"]]
            if key is not None:
                ys = [self.layer_modules[key](xs[0])]
            else:
                attrs = layer.get("attrs", {})
                if layer["op"] == "conv":
                    attrs = {**attrs, "_conv": conv}
                p = {slot: self.params[k] for slot, k in layer.get("params", {}).items()}
                ys = OPS[layer["op"]](xs, attrs, p, False)
            for name, y in zip(layer["outputs"], ys, strict=False):
                env[name] = y
            for v in layer["inputs"]:
                if self._last.get(v) == j and v not in keep:
                    env.pop(v, None)
        out = tuple(env[v] for v in self.outputs)
        return out[0] if len(out) == 1 else out


def set_im2col(net: nn.Module, im2col: bool) -> None:
    """Choose how Caffe's im2col convolutions are traced (see :class:`GraphProgram`)."""
    for m in net.modules():
        if isinstance(m, GraphProgram):
            m.im2col = im2col
