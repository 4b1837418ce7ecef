"""Spatial ops of MatConvNet: ``mcn_crop`` (``dagnn.Crop``), the spatial transformer
(``bilinear_sampler``, ``affine_grid``, ``uniform_scaling_grid``) and ``roi_pool``
(``dagnn.ROIPooling``).

Vars keep MatConvNet's arrays under the usual ``(3, 2, 0, 1)`` transposition, so a grid var
(``2 x Ho x Wo x N``) is (N, Wo, 2, Ho) here, a ``1 x 1 x 6 x N`` transform (N, 6, 1, 1) and a
``5 x R`` list of regions (1, 1, 5, R); these ops convert to and from the layers' forms.
"""

from __future__ import annotations

import torch

from porting.layers.bilinear_sampler import affine_grid, bilinear_sample, uniform_scaling_grid
from porting.layers.crop import crop_like
from porting.layers.roi_pooling import flatten_rois, roi_pool

from .checks import FieldError, boolean, choice, integer, ints, is_num
from .registry import GraphError, chw, register_op


def grid_from_var(g: torch.Tensor) -> torch.Tensor:
    """A grid var (N, Wo, 2, Ho) as (N, Ho, Wo, 2)."""
    if g.dim() != 4 or g.shape[2] != 2:
        raise GraphError(f"a sampling grid must be a 2 x Ho x Wo x N array, got a var of "
                         f"shape {tuple(g.shape)}")
    return g.permute(0, 3, 1, 2)


def grid_to_var(g: torch.Tensor) -> torch.Tensor:
    """(N, Ho, Wo, 2) as a grid var (N, Wo, 2, Ho)."""
    return g.permute(0, 2, 3, 1)


def _per_image(t: torch.Tensor, n: int, what: str) -> torch.Tensor:
    """A ``1 x 1 x n x N`` var (N, n, 1, 1) as (N, n)."""
    if t.dim() != 4 or tuple(t.shape[1:]) != (n, 1, 1):
        raise GraphError(f"{what} must be a 1 x 1 x {n} x N array, got a var of shape "
                         f"{tuple(t.shape)}")
    return t.reshape(t.shape[0], n)


@register_op("mcn_crop", arity=(2, 2), attrs={"offset": lambda f, v: ints(f, v, 2, 0)},
             shape=lambda a, s, p: [(chw(s[0])[0],) + chw(s[1])[1:]], fresh=False)
def mcn_crop(x, a, p, training):
    return [crop_like(x[0], x[1], tuple(a.get("offset", (0, 0))))]


@register_op("bilinear_sampler", arity=(2, 2), attrs={"cpu_kernel": boolean},
             shape=lambda a, s, p: [(chw(s[0])[0], s[1][2], s[1][0])] if len(s[1]) == 3
             else None, fresh=True)
def bilinear_sampler(x, a, p, training):
    return [bilinear_sample(x[0], grid_from_var(x[1]), a.get("cpu_kernel", False))]


_GRID_ATTRS = {"ho": lambda f, v: integer(f, v, 1, 16384),
               "wo": lambda f, v: integer(f, v, 1, 16384)}


@register_op("affine_grid", required=("ho", "wo"), attrs=_GRID_ATTRS,
             shape=lambda a, s, p: [(a["wo"], 2, a["ho"])], fresh=True)
def affine_grid_op(x, a, p, training):
    theta = _per_image(x[0], 6, "the affine transforms")
    return [grid_to_var(affine_grid(theta, a["ho"], a["wo"]))]


@register_op("uniform_scaling_grid", required=("ho", "wo"), attrs=_GRID_ATTRS,
             shape=lambda a, s, p: [(a["wo"], 2, a["ho"])], fresh=True)
def uniform_scaling_grid_op(x, a, p, training):
    t = _per_image(x[0], 3, "the transforms [s ty tx]")
    return [grid_to_var(uniform_scaling_grid(t, a["ho"], a["wo"]))]


def rois_from_var(r: torch.Tensor) -> torch.Tensor:
    """The regions var (``5 x R`` -> (1, 1, 5, R); ``1 x 1 x 5 x R`` -> (R, 5, 1, 1); a
    vector in MATLAB's column order) as (R, 5) rows ``[image u1 v1 u2 v2]``."""
    if r.dim() == 4 and r.shape[:2] == (1, 1) and r.shape[2] == 5:
        return r[0, 0].t()
    if r.dim() == 4 and r.shape[1:] == (5, 1, 1):
        return r.reshape(-1, 5)
    if r.dim() == 2 and r.shape[1] == 5:
        return r
    if r.dim() == 1 and r.numel() % 5 == 0 and r.numel():  # a 5 x K array read as a vector
        return r.reshape(-1, 5)
    raise GraphError(f"the regions must be a 5 x K array, got a var of shape {tuple(r.shape)}")


def _transform(field, v):
    values = [v] if is_num(v) else v
    if not isinstance(values, list) or len(values) not in (1, 2, 6) or \
            not all(is_num(t) for t in values):
        raise FieldError(field, f"expected 1, 2 or 6 finite numbers, got {v!r}")


def _roi_shape(a, shapes, p):
    c = chw(shapes[0])[0]
    sh, sw = a["subdivisions"]
    return [(c * sh * sw, 1, 1) if a.get("flatten") else (c, sh, sw)]


@register_op("roi_pool", arity=(2, 2), required=("subdivisions",),
             attrs={"method": lambda f, v: choice(f, v, ("max", "avg")),
                    "subdivisions": lambda f, v: ints(f, v, 2, 1),
                    "transform": _transform, "flatten": boolean},
             shape=_roi_shape, fresh=True)
def roi_pool_op(x, a, p, training):
    transform = a.get("transform", 1.0)
    y = roi_pool(x[0], rois_from_var(x[1]), tuple(a["subdivisions"]),
                 transform if isinstance(transform, int | float) else tuple(transform),
                 a.get("method", "max"))
    return [flatten_rois(y) if a.get("flatten", False) else y]
