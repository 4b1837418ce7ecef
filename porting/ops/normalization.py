"""Normalisation ops: LRN (``caffe_lrn``, ``mcn_lrn``), BatchNorm (``caffe_bn``, ``mcn_bn``),
Caffe's ``Scale`` / ``Bias`` (also MatConvNet's ``dagnn.Scale``), ``mvn`` (Caffe ``MVN``),
``ssd_normalize`` (SSD's ``Normalize``) and ``fork_bn`` (the TSN/PSPNet fork's ``BN``)."""

from __future__ import annotations

from typing import Any

import torch

from porting.layers import CaffeLRN, MatConvNetLRN, caffe_batch_norm, matconvnet_batch_norm
from porting.layers.batchnorm import channel_affine
from porting.layers.normalize import fork_bn as fork_bn_forward
from porting.layers.normalize import mvn as mvn_forward
from porting.layers.normalize import ssd_normalize as ssd_normalize_forward

from .checks import FieldError, axis, boolean, choice, integer, number, numbers
from .registry import GraphError, bshape, register_module_op, register_op

register_module_op("caffe_lrn", CaffeLRN.from_attrs, required=("local_size", "alpha", "beta"),
                   attrs={"local_size": lambda f, v: integer(f, v, 1, 4096),
                          "alpha": number, "beta": number, "k": number,
                          "norm_region": lambda f, v: choice(
                              f, v, ("ACROSS_CHANNELS", "WITHIN_CHANNEL"))})
register_module_op("mcn_lrn", MatConvNetLRN.from_attrs, required=("param",),
                   attrs={"param": lambda f, v: numbers(f, v, 4)})


def uses_global_stats(a: dict[str, Any], training: bool) -> bool:
    """Caffe's BatchNorm without ``use_global_stats`` uses them in the TEST phase only."""
    use_global = a.get("use_global_stats")
    return (not training) if use_global is None else bool(use_global)


@register_op("caffe_bn", attrs={"eps": lambda f, v: number(f, v, 0.0),
                                "use_global_stats": lambda f, v: boolean(f, v, optional=True),
                                "moving_average_fraction": number},
             slots={"mean": (True, (1,)), "variance": (True, (1,)),
                    "scale_factor": (True, (0, 1))},
             stats=("mean", "variance", "scale_factor"), inplace=True, fresh=True)
def caffe_bn(x, a, p, training):
    return [caffe_batch_norm(x[0], p["mean"], p["variance"], p["scale_factor"],
                             a.get("eps", 1e-5), uses_global_stats(a, training), training,
                             a.get("moving_average_fraction", 0.999), a.get("_fast", False),
                             a.get("_inplace", False))]


def _mcn_bn_check(where, a, p):
    m = p["moments"]
    if m.shape[-1] != 2:
        raise FieldError(f"{where}.params.moments", f"shape {tuple(m.shape)}, expected C x 2")


@register_op("mcn_bn", attrs={"eps": lambda f, v: number(f, v, 0.0)},
             slots={"moments": (True, (2,)), "mult": (True, (1, 2)), "bias": (True, (1, 2))},
             stats=("moments",), check=_mcn_bn_check, inplace=True, fresh=True)
def mcn_bn(x, a, p, training):
    return [matconvnet_batch_norm(x[0], p["mult"], p["bias"], p["moments"], a.get("eps", 1e-5),
                                  training, fast=a.get("_fast", False),
                                  inplace=a.get("_inplace", False))]


_ANY_RANK = (0, 1, 2, 3, 4)


def _needs_param(slot: str):
    def check(where, layer, p):
        if slot not in p and len(layer["inputs"]) == 1:
            raise FieldError(f"{where}.params",
                             f"a one-input {layer['op']!r} layer needs its parameter")
    return check


@register_op("scale", arity=(1, 2), attrs={"axis": axis},
             slots={"weight": (False, _ANY_RANK), "bias": (False, _ANY_RANK)},
             check=_needs_param("weight"), inplace=True, fresh=True)
def scale(x, a, p, training):
    ax = a.get("axis", 1) % x[0].dim()
    w = x[1] if len(x) > 1 else p["weight"]
    if a.get("_fast") and ax == 1 and w.dim() == 1:
        b = p["bias"] if "bias" in p else torch.zeros_like(w)
        return [channel_affine(x[0], w, b, inplace=a.get("_inplace", False))]
    y = x[0] * bshape(w, x[0].dim(), ax)
    if "bias" in p:
        y = y + bshape(p["bias"], x[0].dim(), ax)
    return [y]


@register_op("bias", arity=(1, 2), attrs={"axis": axis}, slots={"bias": (False, _ANY_RANK)},
             check=_needs_param("bias"), fresh=True)
def bias(x, a, p, training):
    ax = a.get("axis", 1) % x[0].dim()
    b = x[1] if len(x) > 1 else p["bias"]
    return [x[0] + bshape(b, x[0].dim(), ax)]


@register_op("mvn", attrs={"normalize_variance": boolean, "across_channels": boolean,
                           "eps": lambda f, v: number(f, v, 0.0)})
def mvn(x, a, p, training):
    return [mvn_forward(x[0], a.get("normalize_variance", True),
                        a.get("across_channels", False), a.get("eps", 1e-9))]


@register_op("ssd_normalize", attrs={"across_spatial": boolean,
                                     "eps": lambda f, v: number(f, v, 0.0)},
             slots={"scale": (True, (0, 1))})
def ssd_normalize(x, a, p, training):
    return [ssd_normalize_forward(x[0], p["scale"], a.get("across_spatial", True),
                                  a.get("eps", 1e-10))]


def _fork_bn_check(where, layer, p):
    sizes = {slot: t.numel() for slot, t in p.items()}
    if len(set(sizes.values())) != 1:
        raise FieldError(f"{where}.params", f"BN blobs of different sizes {sizes}")


@register_op("fork_bn", attrs={"eps": lambda f, v: number(f, v, 0.0), "frozen": boolean},
             slots={"scale": (True, (1, 2, 4)), "shift": (True, (1, 2, 4)),
                    "mean": (True, (1, 2, 4)), "variance": (True, (1, 2, 4))},
             stats=("mean", "variance"), check=_fork_bn_check, fresh=True)
def fork_bn(x, a, p, training):
    """The fork's ``BN`` with its history statistics (TEST phase, or ``frozen``)."""
    if training and not a.get("frozen", False):
        raise GraphError("the fork's BN uses batch statistics when training and not frozen; "
                         "only its test-time form is implemented")
    return [fork_bn_forward(x[0], p["scale"], p["shift"], p["mean"], p["variance"],
                            a.get("eps", 1e-5))]
