"""Run a converted network as a graph of named variables, as MatConvNet and Caffe do.

A graph is a JSON-able dict (stored in the checkpoint) plus one flat parameter table:

``{"framework": "matconvnet"|"caffe", "inputs": [var...], "outputs": [var...],
"layers": [{"name", "type", "op", "inputs", "outputs", "attrs", "params"}...]}``

``type`` is the source layer type (``dagnn.Conv``, ``Convolution``) so that errors and reports
speak the user's framework; ``op`` selects the implementation in :data:`OPS`; ``params`` maps
an op's slot (``weight``, ``bias``, ``moments``...) to a key of the parameter table. Two layers
naming the same key share one tensor, which is how both streams of the paper's network and
Caffe's ``ParamSpec`` sharing are represented.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from porting.layers import (
    CaffeLRN,
    CaffePool2d,
    MatConvNetLRN,
    MatConvNetPool2d,
    caffe_batch_norm,
    class_error,
    im2col_conv2d,
    matconvnet_batch_norm,
    softmax_log_loss,
    square_diff,
)
from porting.layers.batchnorm import (
    batch_norm_affine,
    caffe_global_stats,
    channel_affine,
    then_scale,
)

Params = Mapping[str, torch.Tensor]
OpFn = Callable[[list[torch.Tensor], dict[str, Any], Params, bool], list[torch.Tensor]]
OPS: dict[str, OpFn] = {}

# Ops whose slots hold running statistics rather than trained weights.
STAT_SLOTS = {("caffe_bn", "mean"), ("caffe_bn", "variance"), ("caffe_bn", "scale_factor"),
              ("mcn_bn", "moments")}


class GraphError(ValueError):
    """A graph that cannot run: unknown op, missing variable or parameter, bad shapes."""


def register_op(name: str) -> Callable[[OpFn], OpFn]:
    def deco(fn: OpFn) -> OpFn:
        OPS[name] = fn
        return fn
    return deco


def _bshape(w: torch.Tensor, ndim: int, axis: int = 1) -> torch.Tensor:
    return w.reshape((1,) * axis + tuple(w.shape) + (1,) * (ndim - axis - w.dim()))


@register_op("conv")
def _conv(x, a, p, training):
    t, b, left, r = a.get("pad", (0, 0, 0, 0))
    inp = x[0]
    if inp.dim() == 2:  # MatConvNet treats an N x C matrix as a 1x1 map
        inp = inp[:, :, None, None]
    w = p["weight"]
    # MatConvNet infers the groups from the filter depth at run time (groups=None here).
    groups = a.get("groups") or max(1, inp.shape[1] // w.shape[1])
    if inp.shape[1] != w.shape[1] * groups:
        raise GraphError(f"input has {inp.shape[1]} channels, filters expect "
                         f"{w.shape[1]} x {groups} groups")
    stride, dilation = tuple(a.get("stride", (1, 1))), tuple(a.get("dilation", (1, 1)))
    if a.get("_conv") == "im2col":
        return [im2col_conv2d(inp, w, p.get("bias"), stride, (t, b, left, r), dilation, groups)]
    if t == b and left == r:
        y = F.conv2d(inp, w, p.get("bias"), stride, (t, left), dilation, groups)
    else:
        y = F.conv2d(F.pad(inp, (left, r, t, b)), w, p.get("bias"), stride, 0, dilation, groups)
    return [y]


@register_op("linear")
def _linear(x, a, p, training):
    axis = a.get("axis", 1)
    inp = x[0].flatten(axis)
    if inp.shape[-1] != p["weight"].shape[1]:
        raise GraphError(f"InnerProduct input has {inp.shape[-1]} values per item, weight "
                         f"expects {p['weight'].shape[1]}")
    return [F.linear(inp, p["weight"], p.get("bias"))]


def _module_op(factory: Callable[[dict[str, Any]], nn.Module]) -> OpFn:
    # Keyed by the attributes' values: keying by id() would hand a freed graph's module to a
    # new attrs dict that happens to reuse the address.
    cache: dict[str, nn.Module] = {}

    def run(x, a, p, training):
        key = json.dumps(a, sort_keys=True)
        if key not in cache:
            cache[key] = factory(a)
        return [cache[key](x[0])]
    return run


#: Ops run by a layer module built from the layer's attrs (export swaps in its export form).
MODULE_OPS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "caffe_pool": CaffePool2d.from_attrs,
    "mcn_pool": MatConvNetPool2d.from_attrs,
    "caffe_lrn": CaffeLRN.from_attrs,
    "mcn_lrn": MatConvNetLRN.from_attrs,
}
for _name, _factory in MODULE_OPS.items():
    OPS[_name] = _module_op(_factory)


def _uses_global_stats(a: dict[str, Any], training: bool) -> bool:
    """Caffe's BatchNorm without ``use_global_stats`` uses them in the TEST phase only."""
    use_global = a.get("use_global_stats")
    return (not training) if use_global is None else bool(use_global)


@register_op("caffe_bn")
def _caffe_bn(x, a, p, training):
    return [caffe_batch_norm(x[0], p["mean"], p["variance"], p["scale_factor"],
                             a.get("eps", 1e-5), _uses_global_stats(a, training), training,
                             a.get("moving_average_fraction", 0.999), a.get("_fast", False),
                             a.get("_inplace", False))]


@register_op("mcn_bn")
def _mcn_bn(x, a, p, training):
    return [matconvnet_batch_norm(x[0], p["mult"], p["bias"], p["moments"], a.get("eps", 1e-5),
                                  training, fast=a.get("_fast", False),
                                  inplace=a.get("_inplace", False))]


@register_op("scale")
def _scale(x, a, p, training):
    axis = a.get("axis", 1) % x[0].dim()
    w = x[1] if len(x) > 1 else p["weight"]
    if a.get("_fast") and axis == 1 and w.dim() == 1:
        b = p["bias"] if "bias" in p else torch.zeros_like(w)
        return [channel_affine(x[0], w, b, inplace=a.get("_inplace", False))]
    y = x[0] * _bshape(w, x[0].dim(), axis)
    if "bias" in p:
        y = y + _bshape(p["bias"], x[0].dim(), axis)
    return [y]


@register_op("bias")
def _bias(x, a, p, training):
    axis = a.get("axis", 1) % x[0].dim()
    b = x[1] if len(x) > 1 else p["bias"]
    return [x[0] + _bshape(b, x[0].dim(), axis)]


@register_op("relu")
def _relu(x, a, p, training):
    slope = a.get("negative_slope", 0.0)
    if slope == 0 and a.get("_inplace"):
        return [F.relu_(x[0])]
    return [F.relu(x[0]) if slope == 0 else F.leaky_relu(x[0], slope)]


OPS["sigmoid"] = lambda x, a, p, t: [torch.sigmoid(x[0])]
OPS["tanh"] = lambda x, a, p, t: [torch.tanh(x[0])]
OPS["identity"] = lambda x, a, p, t: [x[0] for _ in range(max(1, a.get("n_out", 1)))]
OPS["softmax"] = lambda x, a, p, t: [torch.softmax(x[0], dim=a.get("axis", 1))]
OPS["sum"] = lambda x, a, p, t: [sum(x[1:], x[0])]
OPS["square_diff"] = lambda x, a, p, t: [square_diff(x[0], x[1])]


@register_op("dropout")
def _dropout(x, a, p, training):
    return [F.dropout(x[0], a.get("rate", 0.5), training)]


@register_op("eltwise")
def _eltwise(x, a, p, training):
    op = a.get("operation", "SUM")
    if op == "SUM":
        coeff = a.get("coeff") or [1.0] * len(x)
        if (a.get("_inplace") and len(x) == 2 and coeff == [1.0, 1.0]
                and not (torch.is_grad_enabled() and (x[0].requires_grad or x[1].requires_grad))):
            # the fast forms: a ResNet shortcut sum written over its private bottom
            k = a.get("_into", 0)
            return [x[k].add_(x[1 - k])]
        y = x[0] * coeff[0] if coeff[0] != 1 else x[0]
        for c, xi in zip(coeff[1:], x[1:], strict=True):
            y = y + (xi if c == 1 else c * xi)
        return [y]
    if op == "PROD":
        y = x[0]
        for xi in x[1:]:
            y = y * xi
        return [y]
    if op == "MAX":
        y = x[0]
        for xi in x[1:]:
            y = torch.maximum(y, xi)
        return [y]
    raise GraphError(f"unknown Eltwise operation {op!r}")


@register_op("power")
def _power(x, a, p, training):
    y = a.get("shift", 0.0) + a.get("scale", 1.0) * x[0]
    power = a.get("power", 1.0)
    return [y if power == 1 else y * y if power == 2 else torch.pow(y, power)]


OPS["concat"] = lambda x, a, p, t: [torch.cat(x, dim=a.get("axis", 1))]


@register_op("slice")
def _slice(x, a, p, training):
    axis, points = a.get("axis", 1), list(a.get("slice_points", []))
    n = x[0].shape[axis]
    if not points:
        k = a["n_out"]
        points = [n // k * i for i in range(1, k)]
    bounds = [0] + points + [n]
    return [x[0].narrow(axis, s, e - s) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]


@register_op("flatten")
def _flatten(x, a, p, training):
    return [torch.flatten(x[0], a.get("axis", 1), a.get("end_axis", -1))]


@register_op("reshape")
def _reshape(x, a, p, training):
    shape = [x[0].shape[i] if d == 0 else d for i, d in enumerate(a["shape"])]
    return [x[0].reshape(shape)]


@register_op("pair_split_square")
def _pair_split_square(x, a, p, training):
    """caffe-reid ``PairEuclidean``: the batch's first half minus its second half, squared."""
    n = x[0].shape[0] // 2
    return [square_diff(x[0][:n], x[0][n:])]


@register_op("pair_same_label")
def _pair_same_label(x, a, p, training):
    """caffe-reid ``PairEuclidean``'s label top: 1 where the two halves share an identity."""
    n = x[0].shape[0] // 2
    return [(x[0][:n] == x[0][n:]).to(x[0].dtype)]


@register_op("softmax_loss")
def _softmax_loss(x, a, p, training):
    offset = a.get("label_offset", 0)  # MatConvNet labels are 1-based
    return [softmax_log_loss(x[0], x[1] - offset, a.get("reduction", "mean"))]


@register_op("class_error")
def _class_error(x, a, p, training):
    return [class_error(x[0], x[1] - a.get("label_offset", 0))]


@register_op("accuracy")
def _accuracy(x, a, p, training):
    """Caffe ``Accuracy``: fraction of items whose label is among the top-k scores."""
    scores = x[0] if x[0].dim() > 1 else x[0][None]
    scores = scores.movedim(a.get("axis", 1), -1).reshape(-1, scores.shape[a.get("axis", 1)])
    label = x[1].reshape(-1).long()
    top = scores.topk(a.get("top_k", 1), dim=1).indices
    return [(top == label[:, None]).any(dim=1).to(scores.dtype).mean()]


@register_op("topk_error")
def _topk_error(x, a, p, training):
    logits = x[0] if x[0].dim() == 4 else x[0][:, :, None, None]
    n, _, h, w = logits.shape
    label = (x[1].long().reshape(-1) - a.get("label_offset", 0)).view(n, 1, 1, 1)
    top = logits.topk(a.get("topk", 5), dim=1).indices
    hit = (top == label.expand(n, 1, h, w)).any(dim=1)
    return [(~hit).sum().to(logits.dtype)]


#: How convolutions are computed: Caffe's im2col + GEMM (its float32 rounding) or PyTorch's
#: native kernels (same maths, faster). A run-time choice, never stored in the checkpoint.
CONV_ALGORITHMS = ("im2col", "native")


#: Ops with a fast test-time form (``GraphModule.exact = False``); those that may then
#: overwrite their input; ops whose output is a new tensor that nothing else aliases.
FAST_OPS = {"caffe_bn", "mcn_bn", "scale"}
INPLACE_OPS = {"caffe_bn", "mcn_bn", "scale", "relu", "eltwise"}
FRESH_OPS = {"conv", "caffe_bn", "mcn_bn", "scale", "bias", "linear", "eltwise"}


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
                 for slot in layer.get("params", {}) if (layer["op"], slot) in STAT_SLOTS}
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
        """Layers of :data:`INPLACE_OPS` with an input that is a fresh tensor read by that
        layer alone, and which input: in the fast forms they may overwrite it. That is the
        first input, or for a two-bottom Eltwise either one (a sum commutes bit for bit)."""
        # an Eltwise of one bottom passes it through: its output is not a new tensor
        made = {v: layer["op"] for layer in self.layers for v in layer["outputs"]
                if layer["op"] != "eltwise" or len(layer["inputs"]) > 1}

        def private(v: str) -> bool:
            return made.get(v) in FRESH_OPS and len(readers[v]) == 1 and v not in self.inputs

        found: dict[int, int] = {}
        for i, layer in enumerate(self.layers):
            ins = layer["inputs"]
            if layer["op"] not in INPLACE_OPS or not ins:
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
        if not _uses_global_stats(a, self.training):
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
            elif not self.exact and layer["op"] in INPLACE_OPS:
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
