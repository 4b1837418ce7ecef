"""Run a converted network as a graph of named variables, as MatConvNet and Caffe do.

A graph is a JSON-able dict (stored in the checkpoint) plus one flat parameter table:

``{"framework": "matconvnet"|"caffe", "inputs": [var...], "outputs": [var...],
"layers": [{"name", "type", "op", "inputs", "outputs", "attrs", "params"}...]}``

``type`` is the source layer type (``dagnn.Conv``, ``Convolution``) so that errors and reports
speak the user's framework; ``op`` selects the registered op (:mod:`porting.ops`); ``params`` maps
an op's slot (``weight``, ``bias``, ``moments``...) to a key of the parameter table. Two layers
naming the same key share one tensor, which is how both streams of the paper's network and
Caffe's ``ParamSpec`` sharing are represented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from porting.layers.batchnorm import (
    batch_norm_affine,
    caffe_global_stats,
    channel_affine,
    then_scale,
)
from porting.ops import OPS, GraphError
from porting.ops.normalization import uses_global_stats

__all__ = ["CONV_ALGORITHMS", "MODULE_OPS", "OPS", "GraphError", "GraphModule", "default_conv"]

#: Ops run by a layer module built from the layer's attrs (export swaps in its export form).
MODULE_OPS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    name: op.module for name, op in OPS.items() if op.module is not None}

#: How convolutions are computed: Caffe's im2col + GEMM (its float32 rounding) or PyTorch's
#: native kernels (same maths, faster). A run-time choice, never stored in the checkpoint.
CONV_ALGORITHMS = ("im2col", "native")


def default_conv(framework: str) -> str:
    """Caffe graphs follow Caffe's im2col rounding by default; MatConvNet's are direct."""
    return "im2col" if framework == "caffe" else "native"


def _layer_error(layer: dict[str, Any], exc: Exception,
                 scale: dict[str, Any] | None = None) -> GraphError:
    """An op refusing its inputs (a kernel larger than the map, a bad attribute that got past
    the checks) as one line naming the layer (and the Scale run with it), not a traceback."""
    where = f"layer {layer['name']!r} ({layer['type']})"
    if scale is not None:
        where += f" with {scale['name']!r} ({scale['type']})"
    msg = (str(exc).splitlines() or [type(exc).__name__])[0]
    return GraphError(f"{where}: {msg}")


class GraphModule(nn.Module):
    """Executes a converted graph; ``forward(..., outputs=[names])`` returns named vars.

    ``conv`` selects the convolution arithmetic (:data:`CONV_ALGORITHMS`; ``None``: the
    framework's default, :func:`default_conv`); it can be changed later by assigning
    ``module.conv``. ``exact = False`` (set by :mod:`porting.inference`) runs BatchNorm and
    Scale as one per-channel affine pass and a ReLU in place on a tensor only it reads.
    """

    exact: bool = True

    def __init__(self, graph: dict[str, Any], params: Mapping[str, torch.Tensor],
                 conv: str | None = None) -> None:
        super().__init__()
        self.graph = graph
        self.conv = conv or default_conv(graph.get("framework", ""))
        if self.conv not in CONV_ALGORITHMS:
            raise GraphError(f"unknown convolution algorithm {conv!r}; expected one of "
                             f"{list(CONV_ALGORITHMS)}")
        self.layers: list[dict[str, Any]] = list(graph["layers"])
        if not self.layers:
            raise GraphError("the network has no layer")
        self.inputs: list[str] = list(graph["inputs"])
        self.default_outputs: list[str] = list(graph.get("outputs") or self.layers[-1]["outputs"])
        self.params = nn.ParameterDict()
        stats = {layer["params"][slot] for layer in self.layers
                 for slot in layer.get("params", {})
                 if layer["op"] in OPS and slot in OPS[layer["op"]].stats}
        for key, value in params.items():
            self.params[key] = nn.Parameter(value, requires_grad=key not in stats)
        for layer in self.layers:
            if layer["op"] not in OPS:
                raise GraphError(f"layer {layer['name']!r} ({layer['type']}): no op "
                                 f"{layer['op']!r}; known: {sorted(OPS)}")
            for slot, key in layer.get("params", {}).items():
                if key not in self.params:
                    raise GraphError(f"layer {layer['name']!r} ({layer['type']}): parameter "
                                     f"{key!r} for {slot!r} is missing")
        readers: dict[str, list[int]] = {}  # var -> the layers that read it, in order
        for i, layer in enumerate(self.layers):
            for v in layer["inputs"]:
                readers.setdefault(v, []).append(i)
        self._last_use = {v: r[-1] for v, r in readers.items()}
        self._private = self._private_inputs(readers)
        self._bn_scale = self._bn_scale_pairs(readers)

    def _private_inputs(self, readers: dict[str, list[int]]) -> dict[int, int]:
        """Layers of an ``inplace`` op with an input that is a fresh tensor read by that
        layer alone, and which input: in the fast forms they may overwrite it. That is the
        first input, or for a two-bottom Eltwise either one (a sum commutes bit for bit)."""
        # an Eltwise of one bottom passes it through: its output is not a new tensor
        made = {v: layer["op"] for layer in self.layers for v in layer["outputs"]
                if layer["op"] != "eltwise" or len(layer["inputs"]) > 1}

        def private(v: str) -> bool:
            return (v in made and OPS[made[v]].fresh and len(readers[v]) == 1
                    and v not in self.inputs)

        found: dict[int, int] = {}
        for i, layer in enumerate(self.layers):
            ins = layer["inputs"]
            if not OPS[layer["op"]].inplace or not ins:
                continue
            slots = (0, 1) if layer["op"] == "eltwise" and len(ins) == 2 else (0,)
            for k in slots:
                if private(ins[k]):
                    found[i] = k
                    break
        return found

    def _bn_scale_pairs(self, readers: dict[str, list[int]]) -> dict[int, int]:
        """Caffe BatchNorm layers whose output only a one-bottom Scale reads (ResNet's
        ``bn`` -> ``scale`` pairs), by the Scale's index: the fast forms run each pair as one
        per-channel affine pass, as the canonical classes do."""
        pairs = {}
        for i, layer in enumerate(self.layers):
            if layer["op"] != "caffe_bn" or len(layer["outputs"]) != 1:
                continue
            v = layer["outputs"][0]
            if len(readers.get(v, [])) != 1 or v in self.inputs:
                continue
            j = readers[v][0]
            scale = self.layers[j]
            if (scale["op"] == "scale" and scale["inputs"] == [v] and j > i
                    and "weight" in scale.get("params", {})
                    and {"mean", "variance", "scale_factor"} <= set(layer.get("params", {}))):
                pairs[i] = j
        return pairs

    def _bn_then_scale(self, i: int, x: torch.Tensor, inplace: bool) -> torch.Tensor | None:
        """Layer ``i`` (a Caffe BatchNorm) and the Scale after it as one affine pass, or None
        when the pair is not a frozen per-channel map right now (batch statistics, another
        axis)."""
        bn, scale = self.layers[i], self.layers[self._bn_scale[i]]
        a = bn.get("attrs", {})
        if not uses_global_stats(a, self.training):
            return None
        if x.dim() < 2 or scale.get("attrs", {}).get("axis", 1) % x.dim() != 1:
            return None
        bp = {slot: self.params[key] for slot, key in bn["params"].items()}
        sp = {slot: self.params[key] for slot, key in scale["params"].items()}
        if sp["weight"].dim() != 1:
            return None
        ab = batch_norm_affine(*caffe_global_stats(bp["mean"], bp["variance"],
                                                   bp["scale_factor"], a.get("eps", 1e-5)))
        return channel_affine(x, *then_scale(ab, sp["weight"], sp.get("bias")),
                              inplace=inplace)

    def state_dict_keys(self) -> list[str]:
        return [f"params.{k}" for k in self.params]

    def var_names(self) -> list[str]:
        names = list(self.inputs)
        for layer in self.layers:
            names += [v for v in layer["outputs"] if v not in names]
        return names

    def forward(
        self,
        *args: torch.Tensor,
        outputs: Iterable[str] | None = None,
        **kwargs: torch.Tensor,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Inputs by position (``graph["inputs"]`` order) or by var name; any var may be
        fed by name (e.g. ``pool5=...``), and what would produce it is then skipped.

        Without ``outputs`` it returns the graph's single default output (or a dict if it has
        several); with ``outputs`` a dict of exactly those vars.
        """
        env: dict[str, torch.Tensor] = dict(zip(self.inputs, args, strict=False))
        env.update(kwargs)
        given = set(env)
        wanted = list(outputs) if outputs is not None else self.default_outputs
        known = set(self.var_names())
        missing = [w for w in wanted if w not in known]
        if missing:
            raise GraphError(f"unknown variable(s) {missing}; the graph has {len(known)} vars, "
                             f"e.g. {sorted(known)[:8]}")
        keep = set(wanted)
        needed = self.needed(keep, given=set(env))
        for i, layer in enumerate(self.layers):
            if not any(o in needed and o not in env for o in layer["outputs"]):
                continue
            try:
                xs = [env[v] for v in layer["inputs"]]
            except KeyError as exc:
                raise GraphError(f"layer {layer['name']!r} ({layer['type']}): input var "
                                 f"{exc.args[0]!r} was not given or computed") from None
            p = {slot: self.params[key] for slot, key in layer.get("params", {}).items()}
            attrs = layer.get("attrs", {})
            if layer["op"] == "conv":
                attrs = {**attrs, "_conv": self.conv}
            elif not self.exact and OPS[layer["op"]].inplace:
                k = self._private.get(i)
                inplace = (k is not None and layer["inputs"][k] not in keep
                           and layer["inputs"][k] not in given)
                attrs = {**attrs, "_fast": True, "_inplace": inplace}
                if inplace and k:
                    attrs["_into"] = k
            scale = (self.layers[self._bn_scale[i]] if not self.exact and i in self._bn_scale
                     and layer["outputs"][0] not in keep else None)
            try:  # the BatchNorm and its Scale in one pass: the BatchNorm's output is never made
                y = self._bn_then_scale(i, xs[0], attrs["_inplace"]) if scale else None
                if y is not None:
                    names, ys = scale["outputs"], [y]
                else:
                    scale = None
                    names, ys = layer["outputs"], OPS[layer["op"]](xs, attrs, p, self.training)
            except (GraphError, RuntimeError, TypeError, IndexError, ValueError) as exc:
                raise _layer_error(layer, exc, scale) from None
            for name, y in zip(names, ys, strict=False):
                env[name] = y
            self._release(i, keep, env)
        if outputs is None and len(wanted) == 1:
            return env[wanted[0]]
        return {w: env[w] for w in wanted}

    def _release(self, i: int, keep: set[str], env: dict[str, torch.Tensor]) -> None:
        """Drop the vars layer ``i`` was the last to read (unless the caller wants them)."""
        for v in self.layers[i]["inputs"]:
            if self._last_use.get(v) == i and v not in keep:
                env.pop(v, None)

    def needed(self, wanted: set[str], given: set[str] = frozenset()) -> set[str]:
        """Vars that must be computed to produce ``wanted`` (a backward sweep); vars in
        ``given`` are fed by the caller, so what produces them is not needed."""
        needed = set(wanted)
        for layer in reversed(self.layers):
            if any(o in needed and o not in given for o in layer["outputs"]):
                needed.update(layer["inputs"])
        return needed
