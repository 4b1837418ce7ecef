"""Caffe's data-movement layers: ``Crop``, ``Permute`` (SSD), ``Tile``, ``ShuffleChannel``
(ShuffleNet) and the shape rules of ``Reshape``; views, slices and copies only, so each
exports as ONNX ``Slice``/``Transpose``/``Tile``/``Reshape``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def crop_offsets(ndim: int, axis: int, offset: Sequence[int]) -> list[int]:
    """Caffe ``Crop``'s per-axis offsets: none (0 everywhere from ``axis``), one (the same
    for every axis from ``axis``) or one per axis from ``axis``."""
    axis = axis % ndim if -ndim <= axis < ndim else axis
    if not 0 <= axis < ndim:
        raise ValueError(f"Crop axis {axis} out of range for a {ndim}-D blob")
    n = ndim - axis
    if len(offset) not in (0, 1, n):
        raise ValueError(f"Crop from axis {axis} of a {ndim}-D blob takes 0, 1 or {n} "
                         f"offsets, got {len(offset)}")
    if len(offset) == 1:
        offset = [offset[0]] * n
    return [0] * axis + ([0] * n if not offset else [int(o) for o in offset])


def crop(x: torch.Tensor, like: Sequence[int], axis: int = 2,
         offset: Sequence[int] = ()) -> torch.Tensor:
    """Caffe ``Crop``: ``x`` cut to ``like`` (the second bottom's shape) on the axes from
    ``axis``, starting at ``offset``; the axes before ``axis`` are kept."""
    offs = crop_offsets(x.dim(), axis, offset)
    start = axis % x.dim()
    for i in range(start, x.dim()):
        if offs[i] < 0 or offs[i] + like[i] > x.shape[i]:
            raise ValueError(f"Crop: offset {offs[i]} + size {like[i]} exceeds axis {i} of "
                             f"size {x.shape[i]}")
        x = x.narrow(i, offs[i], like[i])
    return x


def permute_order(ndim: int, order: Sequence[int]) -> list[int]:
    """SSD ``Permute``'s full order: the given axes, then the others in increasing order."""
    given = [int(o) for o in order]
    if any(not 0 <= o < ndim for o in given) or len(set(given)) != len(given):
        raise ValueError(f"Permute order {given} is not a set of distinct axes of a "
                         f"{ndim}-D blob")
    return given + [i for i in range(ndim) if i not in given]


def permute(x: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """SSD ``Permute``: the axes reordered (a contiguous copy, as Caffe writes it)."""
    return x.permute(permute_order(x.dim(), order)).contiguous()


def tile(x: torch.Tensor, axis: int = 1, tiles: int = 1) -> torch.Tensor:
    """Caffe ``Tile``: the blob from ``axis`` on repeated ``tiles`` times along ``axis``
    (whole blocks, not interleaved)."""
    if tiles < 1:
        raise ValueError(f"Tile tiles must be >= 1, got {tiles}")
    reps = [1] * x.dim()
    reps[axis % x.dim()] = tiles
    return x.repeat(reps)


def shuffle_channel(x: torch.Tensor, group: int) -> torch.Tensor:
    """ShuffleNet ``ShuffleChannel``: channels seen as a ``group x (C / group)`` matrix,
    transposed (output channel ``j * group + i`` is input channel ``i * C/group + j``)."""
    n, c = x.shape[0], x.shape[1]
    if group < 1 or c % group:
        raise ValueError(f"ShuffleChannel group {group} does not divide {c} channels")
    rest = x.shape[2:]
    return x.reshape(n, group, c // group, *rest).transpose(1, 2).reshape(n, c, *rest)


def reshape_shape(shape: Sequence[int], dims: Sequence[int], axis: int = 0,
                  num_axes: int = -1, infer: bool = True) -> list:
    """Caffe ``Reshape``'s output shape: ``dims`` replace the axes ``[axis, axis +
    num_axes)`` (``num_axes = -1``: to the end; a negative ``axis`` counts from the end,
    -1 meaning after the last axis); ``0`` copies the replaced axis at the same position,
    one ``-1`` is inferred from the element count. With ``infer=False`` the ``-1`` is left
    for ``reshape`` to infer and the sizes are not converted to ``int`` (a traced graph keeps
    its batch dynamic)."""
    ndim = len(shape)
    start = axis if axis >= 0 else ndim + axis + 1
    if not 0 <= start <= ndim:
        raise ValueError(f"Reshape axis {axis} out of range for a {ndim}-D blob")
    end = ndim if num_axes == -1 else start + num_axes
    if num_axes < -1 or end > ndim:
        raise ValueError(f"Reshape num_axes {num_axes} from axis {axis} exceeds the "
                         f"{ndim}-D blob")
    out: list = []
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= end:
                raise ValueError(f"Reshape dim {i} is 0 but the blob has no axis "
                                 f"{start + i} to copy")
            out.append(shape[start + i])
        elif d < -1:
            raise ValueError(f"Reshape dim {i} is {d}")
        else:
            out.append(int(d))
    if sum(1 for d in dims if d == -1) > 1:
        raise ValueError("Reshape has more than one -1 dim")
    result = list(shape[:start]) + out + list(shape[end:])
    if not infer:
        return result
    total = 1
    for d in shape[start:end]:
        total *= int(d)
    known = 1
    for d, given in zip(out, dims, strict=True):
        known *= 1 if given == -1 else int(d)
    if -1 in dims:
        if known == 0 or total % known:
            raise ValueError(f"Reshape cannot infer -1: {total} values into {list(dims)}")
        out[list(dims).index(-1)] = total // known
    elif known != total:
        raise ValueError(f"Reshape of {list(shape[start:end])} ({total} values) into "
                         f"{list(dims)}")
    return [int(d) for d in shape[:start]] + [int(d) for d in out] + [int(d) for d in
                                                                      shape[end:]]


def caffe_reshape(x: torch.Tensor, dims: Sequence[int], axis: int = 0,
                  num_axes: int = -1) -> torch.Tensor:
    """Caffe ``Reshape`` of ``x`` (:func:`reshape_shape`; the ``-1`` inferred by torch)."""
    return x.reshape(reshape_shape(x.shape, dims, axis, num_axes, infer=False))
