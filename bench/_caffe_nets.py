"""A Caffe net's structure, blob shapes and seeded random weights, for ``coverage_caffe.py``.

This is the bench's own reading of a prototxt, independent of the converter under test:

* :func:`parse_text` reads protobuf text format into nested dicts (``{field: [values]}``)
  WITHOUT a schema, so fork fields (``ceil_mode``, ``interp_param``, ``bn_param``...) are
  seen as written instead of being rejected or dropped;
* :func:`net_layers` gives the TEST-phase layers (V2 ``layer`` or legacy V1 ``layers`` with
  their enum type names) and the declared inputs;
* :func:`infer` propagates NCHW blob shapes through the layer types of the corpus (BVLC's
  shape rules, and the forks' for their types) and gives each weighted layer the blob shapes
  its Caffe (or fork) ``LayerSetUp`` would allocate;
* :func:`random_weights` fills those blobs from a seeded generator, with BatchNorm
  variances and scale factors positive and He-like convolution scales so that activations
  stay finite through deep nets.

The caffemodel itself is written by ``coverage_caffe.py`` through the project's
``caffe.proto`` declaration.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n?|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([{}:\[\],;<>])|'
                    r'([^\s{}:\[\],;<>"\'#]+))')

# V1LayerParameter.LayerType names -> V2 type strings (the ones deploy nets use)
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "IMAGE_DATA": "ImageData",
    "INNER_PRODUCT": "InnerProduct", "LRN": "LRN", "MVN": "MVN", "POOLING": "Pooling",
    "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split",
    "SLICE": "Slice", "TANH": "TanH", "THRESHOLD": "Threshold",
}
DATA_TYPES = {"Data", "ImageData", "DenseImageData", "HDF5Data", "MemoryData", "WindowData",
              "DummyData", "AnnotatedData", "ReidData"}


def _unquote(tok: str) -> str:
    return bytes(tok[1:-1], "utf-8").decode("unicode_escape")


def parse_text(text: str) -> dict[str, list[Any]]:
    """Protobuf text format -> ``{field: [value, ...]}``; a message value is such a dict, a
    scalar is its token (strings unquoted, numbers and enum names as written)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot tokenise at offset {pos}: {text[pos:pos + 30]!r}")
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(("str", _unquote(m.group(1))))
        elif m.group(2) is not None:
            tokens.append(("sym", m.group(2)))
        elif m.group(3) is not None:
            tokens.append(("word", m.group(3)))
    out, i = _message(tokens, 0, top=True)
    return out


def _message(tokens: list[tuple[str, str]], i: int, top: bool = False
             ) -> tuple[dict[str, list[Any]], int]:
    msg: dict[str, list[Any]] = {}
    while i < len(tokens):
        kind, tok = tokens[i]
        if kind == "sym" and tok in "}>":
            if top:
                raise ValueError("unbalanced '}'")
            return msg, i + 1
        if kind == "sym" and tok in ",;":
            i += 1
            continue
        name = tok
        i += 1
        if i < len(tokens) and tokens[i] == ("sym", ":"):
            i += 1
        if i < len(tokens) and tokens[i][0] == "sym" and tokens[i][1] in "{<":
            value, i = _message(tokens, i + 1)
            msg.setdefault(name, []).append(value)
        elif i < len(tokens) and tokens[i] == ("sym", "["):
            i += 1
            while tokens[i] != ("sym", "]"):
                if tokens[i][0] == "sym" and tokens[i][1] in "{<":
                    value, i = _message(tokens, i + 1)
                    msg.setdefault(name, []).append(value)
                elif tokens[i] == ("sym", ","):
                    i += 1
                else:
                    msg.setdefault(name, []).append(tokens[i][1])
                    i += 1
            i += 1
        else:
            value = tokens[i][1]
            i += 1
            while i < len(tokens) and tokens[i][0] == "str" and tokens[i - 1][0] == "str":
                value += tokens[i][1]  # adjacent string literals concatenate
                i += 1
            msg.setdefault(name, []).append(value)
    if not top:
        raise ValueError("missing '}'")
    return msg, i


def first(msg: dict[str, list[Any]] | None, key: str, default: Any = None) -> Any:
    if not msg or key not in msg or not msg[key]:
        return default
    return msg[key][0]


def num(msg: dict[str, list[Any]] | None, key: str, default: float | None = None
        ) -> float | None:
    v = first(msg, key)
    return default if v is None else float(v)


def ints(msg: dict[str, list[Any]] | None, key: str) -> list[int]:
    return [int(v) for v in (msg or {}).get(key, [])]


def flag(msg: dict[str, list[Any]] | None, key: str, default: bool) -> bool:
    v = first(msg, key)
    return default if v is None else str(v).lower() in ("true", "1")


class Layer:
    """One layer as the bench reads it."""

    def __init__(self, raw: dict[str, list[Any]], v1: bool) -> None:
        self.raw = raw
        self.name = str(first(raw, "name", ""))
        t = str(first(raw, "type", ""))
        self.type = V1_TYPES.get(t, t) if v1 else t
        self.bottoms = [str(b) for b in raw.get("bottom", [])]
        self.tops = [str(t) for t in raw.get("top", [])]

    def param(self, name: str) -> dict[str, list[Any]]:
        return first(self.raw, name, {}) or {}


def _in_test(raw: dict[str, list[Any]]) -> bool:
    inc = raw.get("include", [])
    exc = raw.get("exclude", [])
    if inc and not any(str(first(r, "phase", "")) in ("TEST", "1") for r in inc):
        return False
    return not any(str(first(r, "phase", "")) in ("TEST", "1") for r in exc)


def net_layers(net: dict[str, list[Any]]) -> tuple[list[Layer], dict[str, list[int]]]:
    """TEST-phase layers and the declared inputs ``{blob: shape}`` (``input`` +
    ``input_shape``/``input_dim``, ``Input`` layers)."""
    v1 = "layers" in net and "layer" not in net
    layers = [Layer(r, v1) for r in net.get("layers" if v1 else "layer", []) if _in_test(r)]
    inputs: dict[str, list[int]] = {}
    names = [str(n) for n in net.get("input", [])]
    shapes = [ints(s, "dim") for s in net.get("input_shape", [])]
    dims = ints(net, "input_dim")
    for k, n in enumerate(names):
        if k < len(shapes):
            inputs[n] = shapes[k]
        elif len(dims) >= 4 * (k + 1):
            inputs[n] = dims[4 * k:4 * k + 4]
    for layer in layers:
        if layer.type == "Input":
            shp = layer.param("input_param").get("shape", [])
            for k, top in enumerate(layer.tops):
                inputs[top] = ints(shp[min(k, len(shp) - 1)], "dim") if shp else []
    return layers, inputs


def _spatial(p: dict[str, list[Any]], key: str, default: int) -> tuple[int, int]:
    """(h, w) from ``key`` (repeated or single) or ``key_h``/``key_w``."""
    hv, wv = first(p, key + "_h"), first(p, key + "_w")
    if hv is not None or wv is not None:
        return int(hv if hv is not None else default), int(wv if wv is not None else default)
    vals = ints(p, key if key != "kernel" else "kernel_size")
    if not vals:
        return default, default
    return vals[0], vals[-1] if len(vals) > 1 else vals[0]


def pooled(size: int, k: int, p: int, s: int, ceil: bool) -> int:
    """BVLC pooling output size (ceil, then the last window must start inside the input)."""
    if ceil:
        out = int(math.ceil((size + 2 * p - k) / s)) + 1
    else:
        out = (size + 2 * p - k) // s + 1
    if p and (out - 1) * s >= size + p:
        out -= 1
    return out


class ShapeError(ValueError):
    pass


def infer(layers: list[Layer], inputs: dict[str, list[int]]
          ) -> tuple[dict[str, list[int]], dict[str, list[list[int]]], list[str]]:
    """Blob shapes after each layer (``{(layer, top): shape}`` flattened to the last
    value per blob, plus per-layer shapes), the weight blob shapes of each layer, and notes
    on types whose shape rule is assumed (the bottom's shape)."""
    shapes: dict[str, list[int]] = {k: list(v) for k, v in inputs.items()}
    weights: dict[str, list[list[int]]] = {}
    notes: list[str] = []
    for layer in layers:
        if layer.type == "Input" or layer.type in DATA_TYPES:
            continue
        try:
            bs = [shapes[b] for b in layer.bottoms]
        except KeyError as exc:
            raise ShapeError(f"layer {layer.name!r}: bottom {exc.args[0]!r} has no shape") \
                from None
        tops, w = _rule(layer, bs, notes)
        if w:
            weights[layer.name] = w
        for t, s in zip(layer.tops, tops, strict=False):
            shapes[t] = s
    return shapes, weights, notes


def layer_top_shapes(layers: list[Layer], inputs: dict[str, list[int]]
                     ) -> dict[tuple[str, int], list[int]]:
    """Shape of each (layer, top index) in execution order."""
    shapes: dict[str, list[int]] = {k: list(v) for k, v in inputs.items()}
    out: dict[tuple[str, int], list[int]] = {}
    for layer in layers:
        if layer.type == "Input" or layer.type in DATA_TYPES:
            continue
        tops, _ = _rule(layer, [shapes[b] for b in layer.bottoms], [])
        for k, (t, s) in enumerate(zip(layer.tops, tops, strict=False)):
            shapes[t] = s
            out[(layer.name, k)] = s
    return out


def _axis(a: int, n: int) -> int:
    return a + n if a < 0 else a


def _rule(layer: Layer, bs: list[list[int]], notes: list[str]
          ) -> tuple[list[list[int]], list[list[int]]]:
    t = layer.type
    x = bs[0] if bs else []
    n_tops = len(layer.tops)
    if t in ("Convolution", "ConvolutionDepthwise", "DepthwiseConvolution", "Deconvolution"):
        p = layer.param("convolution_param")
        no = int(first(p, "num_output"))
        kh, kw = _spatial(p, "kernel", 1)
        ph, pw = _spatial(p, "pad", 0)
        sh, sw = _spatial(p, "stride", 1)
        dil = ints(p, "dilation") or [1]
        dh, dw = dil[0], dil[-1]
        c = x[1]
        if t == "ConvolutionDepthwise":  # the fork allocates one k x k filter per channel
            group = c
        else:
            group = int(first(p, "group", 1))
        bias = flag(p, "bias_term", True)
        if t == "Deconvolution":
            oh = sh * (x[2] - 1) + dh * (kh - 1) + 1 - 2 * ph
            ow = sw * (x[3] - 1) + dw * (kw - 1) + 1 - 2 * pw
            w = [[c, no // group, kh, kw]]
        else:
            oh = (x[2] + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
            ow = (x[3] + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
            w = [[no, c // group, kh, kw]]
        return [[x[0], no, oh, ow]], w + ([[no]] if bias else [])
    if t == "Pooling":
        p = layer.param("pooling_param")
        if flag(p, "global_pooling", False):
            return [[x[0], x[1], 1, 1]] * n_tops, []
        kh, kw = _spatial(p, "kernel", 0)
        ph, pw = _spatial(p, "pad", 0)
        sh, sw = _spatial(p, "stride", 1)
        ceil = flag(p, "ceil_mode", True) and str(first(p, "round_mode", "CEIL")) != "FLOOR"
        out = [x[0], x[1], pooled(x[2], kh, ph, sh, ceil), pooled(x[3], kw, pw, sw, ceil)]
        return [out] * n_tops, []
    if t == "InnerProduct":
        p = layer.param("inner_product_param")
        no = int(first(p, "num_output"))
        axis = _axis(int(first(p, "axis", 1)), len(x))
        k = int(np.prod(x[axis:]))
        w = [[k, no]] if flag(p, "transpose", False) else [[no, k]]
        return [x[:axis] + [no]], w + ([[no]] if flag(p, "bias_term", True) else [])
    if t == "BatchNorm":
        return [x], [[x[1]], [x[1]], [1]]
    if t == "BN":
        # yjxiong/Cysu/PSPNet BN (slope_filler, bias_filler, frozen): scale, shift, history
        # mean and variance, always 4 (bn_layer.cpp LayerSetUp); SegNet/ENet BN (scale_filler,
        # shift_filler, bn_mode): scale and shift.
        p = layer.param("bn_param")
        segnet = any(k in p for k in ("scale_filler", "shift_filler", "bn_mode"))
        return [x], [[1, x[1], 1, 1]] * (2 if segnet else 4)
    if t in ("Scale", "Bias"):
        p = layer.param("scale_param" if t == "Scale" else "bias_param")
        axis = _axis(int(first(p, "axis", 1)), len(x))
        na = int(first(p, "num_axes", 1))
        if len(bs) > 1:
            return [x], ([list(bs[1])] if t == "Scale" and flag(p, "bias_term", False) else [])
        shp = x[axis:] if na == -1 else x[axis:axis + na]
        w = [list(shp)]
        if t == "Scale" and flag(p, "bias_term", False):
            w.append(list(shp))
        return [x], w
    if t == "PReLU":
        shared = flag(layer.param("prelu_param"), "channel_shared", False)
        return [x], [[1] if shared else [x[1]]]
    if t == "Normalize":
        shared = flag(layer.param("norm_param"), "channel_shared", True)
        return [x], [[1] if shared else [x[1]]]
    if t == "Embed":
        p = layer.param("embed_param")
        no, k = int(first(p, "num_output")), int(first(p, "input_dim"))
        return [x + [no]], [[k, no]] + ([[no]] if flag(p, "bias_term", True) else [])
    if t == "Concat":
        p = layer.param("concat_param")
        axis = _axis(int(first(p, "axis", first(p, "concat_dim", 1))), len(x))
        out = list(x)
        out[axis] = sum(b[axis] for b in bs)
        return [out], []
    if t == "Slice":
        p = layer.param("slice_param")
        axis = _axis(int(first(p, "axis", first(p, "slice_dim", 1))), len(x))
        points = [0] + ints(p, "slice_point") + [x[axis]]
        if len(points) == 2:
            step = x[axis] // n_tops
            points = [step * k for k in range(n_tops + 1)]
        return [x[:axis] + [points[k + 1] - points[k]] + x[axis + 1:]
                for k in range(n_tops)], []
    if t == "Flatten":
        p = layer.param("flatten_param")
        a = _axis(int(first(p, "axis", 1)), len(x))
        e = _axis(int(first(p, "end_axis", -1)), len(x))
        return [x[:a] + [int(np.prod(x[a:e + 1]))] + x[e + 1:]], []
    if t == "Reshape":
        return [_reshape(layer.param("reshape_param"), x)], []
    if t == "Crop":
        p = layer.param("crop_param")
        axis = _axis(int(first(p, "axis", 2)), len(x))
        return [x[:axis] + bs[1][axis:]], []
    if t == "Axpy":
        return [bs[1]], []
    if t == "Eltwise":
        return [x], []
    if t == "Interp":
        return [_interp(layer.param("interp_param"), x, bs)], []
    if t == "Upsample":
        p = layer.param("upsample_param")
        if first(p, "upsample_h") is not None:
            return [x[:2] + [int(first(p, "upsample_h")), int(first(p, "upsample_w"))]], []
        sc = int(first(p, "scale", 2))
        oh, ow = x[2] * sc, x[3] * sc
        if flag(p, "pad_out_h", False):
            oh -= 1
        if flag(p, "pad_out_w", False):
            ow -= 1
        return [x[:2] + [oh, ow]], []
    if t == "Permute":
        order = ints(layer.param("permute_param"), "order")
        order += [k for k in range(len(x)) if k not in order]
        return [[x[k] for k in order]], []
    if t == "ArgMax":
        p = layer.param("argmax_param")
        k = int(first(p, "top_k", 1))
        if first(p, "axis") is not None:
            out = list(x)
            out[_axis(int(first(p, "axis")), len(x))] = k
            return [out], []
        return [[x[0], 2 if flag(p, "out_max_val", False) else 1, k]], []
    if t in ("ReLU", "Sigmoid", "TanH", "Dropout", "LRN", "Power", "AbsVal", "BNLL", "ELU",
             "Exp", "Log", "Threshold", "Softmax", "MVN", "ShuffleChannel", "Split", "Flip"):
        return [x] * n_tops, []
    notes.append(f"{t}: shape assumed equal to its first bottom")
    return [x] * n_tops, []


def _reshape(p: dict[str, list[Any]], x: list[int]) -> list[int]:
    dims = ints(first(p, "shape", {}), "dim")
    axis = _axis(int(first(p, "axis", 0)), len(x) + 1)
    na = int(first(p, "num_axes", -1))
    end = len(x) if na == -1 else axis + na
    mid = [x[axis + k] if d == 0 else d for k, d in enumerate(dims)]
    out = x[:axis] + mid + x[end:]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(x)) // known
    return out


def _interp(p: dict[str, list[Any]], x: list[int], bs: list[list[int]]) -> list[int]:
    """PSPNet's Interp output size (its ``interp_layer.cpp``: pad, shrink, then zoom)."""
    h = x[2] + int(first(p, "pad_beg", 0)) + int(first(p, "pad_end", 0))
    w = x[3] + int(first(p, "pad_beg", 0)) + int(first(p, "pad_end", 0))
    if first(p, "shrink_factor") is not None:
        s = int(first(p, "shrink_factor"))
        h, w = (h - 1) // s + 1, (w - 1) // s + 1
    if first(p, "zoom_factor") is not None:
        z = int(first(p, "zoom_factor"))
        h, w = h + (h - 1) * (z - 1), w + (w - 1) * (z - 1)
    if first(p, "height") is not None:
        h, w = int(first(p, "height")), int(first(p, "width"))
    if len(bs) > 1:
        h, w = bs[1][2], bs[1][3]
    return x[:2] + [h, w]


def random_weights(layer: Layer, shapes: list[list[int]], rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """Seeded blobs for one layer: He-like convolution/InnerProduct scales, small biases,
    positive BatchNorm variances and scale factor, scales around 1, PReLU slopes in (0, 0.3)."""
    t = layer.type
    out = []
    for i, shp in enumerate(shapes):
        size = int(np.prod(shp)) if shp else 1
        if t in ("BatchNorm",):
            a = [rng.normal(0, 0.2, size), rng.uniform(0.5, 2.0, size),
                 rng.uniform(0.5, 2.0, size)][i]
        elif t == "BN":  # scale, shift, mean, variance
            a = [rng.uniform(0.5, 1.5, size), rng.normal(0, 0.2, size),
                 rng.normal(0, 0.2, size), rng.uniform(0.5, 2.0, size)][i]
        elif t in ("Scale",) and i == 0 and len(layer.bottoms) == 1:
            a = rng.uniform(0.5, 1.5, size)
        elif t == "PReLU":
            a = rng.uniform(0.05, 0.3, size)
        elif t == "Normalize":
            a = rng.uniform(1.0, 20.0, size)
        elif i == 0 and len(shp) >= 2 and t != "Bias":
            fan_in = int(np.prod(shp[1:])) if t != "Deconvolution" else \
                int(np.prod(shp[1:]))
            if t == "InnerProduct" and flag(layer.param("inner_product_param"), "transpose",
                                             False):
                fan_in = shp[0]
            a = rng.normal(0, math.sqrt(2.0 / max(fan_in, 1)), size)
        else:
            a = rng.normal(0, 0.1, size)
        out.append(np.asarray(a, dtype=np.float32).reshape(shp))
    return out
