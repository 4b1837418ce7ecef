"""Feature extraction as the authors do it, batched, cached and optionally distributed.

:func:`extract_features` turns images into one descriptor per image:

1. ``preprocess(image)`` (a :class:`porting.preprocess.Preprocess`: resize, mean...) in
   DataLoader worker processes; when the recipe flips, also ``preprocess(image, flip=True)``,
   i.e. the flip is applied to the image *before* mean subtraction, as
   ``test_gallery_query_crazy.m`` does with ``fliplr(oim)``;
2. the network's feature map (:func:`feature_map`: pool5 / fc7 of any of the three module
   kinds ``porting.load`` returns), batched, fp32 by default;
3. :func:`porting.recipes.pool_positions` of the map (+ the flipped one), then
   :func:`porting.recipes.l2_normalize` when the recipe says so.

Features can be cached on disk (key: model digest + recipe + preprocess + input list with
file sizes and mtimes) and written as ``.npy`` + MATLAB ``.mat`` (``ff``, N x C single, as the
authors save theirs). Under ``torchrun`` (``WORLD_SIZE`` > 1) the list is sharded
contiguously over the processes and the features gathered in order on every rank.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from porting.features import feature_map, flip_commutes, graph_feature_var, resolve_device
from porting.graph import GraphModule
from porting.inference import is_exact
from porting.outputs import atomic_write
from porting.preprocess import Preprocess, load_rgb
from porting.progress import Progress  # re-exported: porting.validation.extract.Progress
from porting.recipes import Recipe, get_recipe, l2_normalize, pool_positions
from porting.validation.datasets import DatasetError, ReIDSplit

__all__ = [
    "CACHE_VERSION",
    "resolve_device",
    "feature_map",
    "model_digest",
    "inputs_digest",
    "cache_key",
    "flip_commutes",
    "PreprocessedImages",
    "Progress",
    "distributed_context",
    "shard_bounds",
    "extract_features",
    "save_features",
    "features_paths",
]

#: Bumped whenever the cached values could change for the same key.
CACHE_VERSION = 1
_MAT_V5_LIMIT = 2**31 - 2**20  # scipy writes MAT v5 (uint32 sizes); beyond this, v7.3


def model_digest(model: nn.Module) -> str:
    """SHA-256 of the model's class and state_dict (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, value in model.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(f"\n{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def inputs_digest(items: Any) -> str:
    """SHA-256 identifying an input list: path + size + mtime per file, bytes per array.

    A sequence with a ``cache_token()`` method (e.g. :class:`~porting.validation.datasets.
    CUHK03Images`) supplies its own identity. A missing file raises :class:`DatasetError`.
    """
    h = hashlib.sha256()
    token = getattr(items, "cache_token", None)
    if callable(token):
        h.update(str(token()).encode())
        return h.hexdigest()
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            try:
                st = os.stat(item)
            except OSError as exc:
                raise DatasetError(f"cannot read image {os.fspath(item)}: {exc.strerror}") \
                    from None
            h.update(f"p:{os.path.abspath(item)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        else:
            arr = load_rgb(item)
            h.update(f"a:{arr.shape}:{arr.dtype}:".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
            h.update(b"\n")
    return h.hexdigest()


def cache_key(model_id: str, recipe: Recipe, preprocess: Preprocess, inputs_id: str, *,
              amp: bool, device: torch.device, feature_var: str | None,
              exact: bool = True) -> tuple[str, dict]:
    """The cache file stem and the material it hashes (stored next to the features); fast and
    exact arithmetic (:mod:`porting.inference`) never share a cache entry."""
    material = {
        "cache_version": CACHE_VERSION,
        "model": model_id,
        "feature_var": feature_var,
        "recipe": dataclasses.asdict(recipe),
        "preprocess": preprocess.to_dict(),
        "inputs": inputs_id,
        "amp": bool(amp),
        "device_type": device.type,
        "exact": bool(exact),
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), material


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _label(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return f"#{index}"


class PreprocessedImages(Dataset):
    """``items[i]`` through ``preprocess``: ``(x,)`` or ``(x, x_flipped)`` (``(3, H, W)``).

    ``items`` may hold paths, PIL images or uint8 arrays, or be a lazy sequence of them. A
    failure names the image in a :class:`DatasetError`.
    """

    def __init__(self, items: Sequence[Any], preprocess: Preprocess, flip: bool,
                 start: int = 0, stop: int | None = None) -> None:
        self.items = items
        self.preprocess = preprocess
        self.flip = bool(flip)
        self.start = start
        self.stop = len(items) if stop is None else stop
        self._flip_by_tensor = flip_commutes(preprocess)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        index = self.start + i
        try:
            item = self.items[index]
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"cannot read image #{index}: {exc}") from None
        where = _label(item, index)
        try:
            rgb = load_rgb(item)
        except DatasetError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise DatasetError(f"cannot read image {where}: {exc}") from None
        try:
            x = self.preprocess(rgb)
            if not self.flip:
                return (x,)
            if self._flip_by_tensor:
                xf = torch.flip(x, dims=(-1,)).contiguous()
            else:
                xf = self.preprocess(rgb, flip=True)
        except ValueError as exc:
            raise DatasetError(f"cannot preprocess image {where}: {exc}") from None
        return x, xf


# --------------------------------------------------------------------------------------------
# Distributed
# --------------------------------------------------------------------------------------------


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distributed_context(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``; initialises torch.distributed under torchrun if needed.

    With ``WORLD_SIZE`` > 1 in the environment and no process group yet, one is created from
    the ``env://`` variables torchrun sets: NCCL for a CUDA device, Gloo on CPU. It is
    destroyed at interpreter exit.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    atexit.register(_destroy_group)
    return dist.get_rank(), dist.get_world_size()


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """Contiguous shard ``[start, stop)`` of ``rank``: blocks of ``ceil(n / world)``."""
    per = math.ceil(n / world) if world else n
    start = min(n, rank * per)
    return start, min(n, start + per)


def _comm_device(device: torch.device) -> torch.device:
    import torch.distributed as dist

    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_min(flag: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_comm_device(device))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _gather_rows(local: torch.Tensor, n: int, world: int, device: torch.device) -> torch.Tensor:
    """All ranks' contiguous shards, padded to equal length, gathered and trimmed to ``n``."""
    import torch.distributed as dist

    comm = _comm_device(device)
    per = math.ceil(n / world)
    dim = torch.tensor([local.shape[1] if local.shape[0] else -1], dtype=torch.int64,
                       device=comm)
    dist.all_reduce(dim, op=dist.ReduceOp.MAX)
    c = int(dim.item())
    padded = torch.zeros(per, max(c, 0), dtype=torch.float32, device=comm)
    if local.shape[0]:
        padded[: local.shape[0]] = local.to(comm)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat(parts)[:n].cpu()


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------


def features_paths(prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(<prefix>.npy, <prefix>.mat)``; a ``.npy``/``.mat`` suffix on ``prefix`` is dropped."""
    p = Path(prefix)
    if p.suffix in (".npy", ".mat"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".npy"), p.with_name(p.name + ".mat")


def _write_npy(path: Path, arr: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)

    atomic_write(path, write)


def _save_mat_v73(path: str, arrays: dict[str, np.ndarray | str]) -> None:
    """Numeric matrices and strings as MATLAB -v7.3 (HDF5 with the MAT userblock)."""
    import h5py

    def str_attr(obj: Any, key: str, value: str) -> None:
        obj.attrs.create(key, np.bytes_(value))

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in arrays.items():
            if isinstance(value, str):
                units = np.frombuffer(value.encode("utf-16-le"), dtype="<u2")
                ds = f.create_dataset(name, data=units.reshape(-1, 1))
                str_attr(ds, "MATLAB_class", "char")
                ds.attrs.create("MATLAB_int_decode", np.int32(2))
            else:
                ds = f.create_dataset(name, data=np.ascontiguousarray(value.T))
                str_attr(ds, "MATLAB_class", "single" if value.dtype == np.float32 else "double")
    header = (b"MATLAB 7.3 MAT-file, written by reid-porting HDF5 schema 1.00 .").ljust(116)
    with open(path, "r+b") as fh:
        fh.write(header + b"\x00" * 8 + b"\x00\x02" + b"IM")


def save_features(prefix: str | os.PathLike[str], features: torch.Tensor | np.ndarray, *,
                  names: Sequence[str] | None = None, meta: dict[str, Any] | None = None,
                  mat_format: str = "auto") -> tuple[Path, Path]:
    """Write ``<prefix>.npy`` (float32 N x C) and ``<prefix>.mat`` atomically.

    The ``.mat`` holds ``ff`` (N x C single, one row per image, as the authors' ``ff``), plus
    ``names`` (cell of file names) when given and ``meta`` (a JSON string). ``mat_format``:
    ``"v5"`` (scipy, readable by ``scipy.io.loadmat``), ``"v7.3"`` (HDF5, as the authors
    save), or ``"auto"``: v5 unless the array is too large for it (Market+500k).
    """
    import scipy.io

    ff = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else features
    ff = np.ascontiguousarray(ff, dtype=np.float32)
    npy, mat = features_paths(prefix)
    _write_npy(npy, ff)
    meta_json = json.dumps(meta or {}, sort_keys=True, default=str)
    fmt = mat_format
    if fmt == "auto":
        fmt = "v5" if ff.nbytes < _MAT_V5_LIMIT else "v7.3"
    if fmt == "v5":
        content: dict[str, Any] = {"ff": ff, "meta": meta_json}
        if names is not None:
            cell = np.empty((len(names), 1), dtype=object)
            cell[:, 0] = list(names)
            content["names"] = cell
        atomic_write(mat, lambda tmp: scipy.io.savemat(tmp, content, do_compression=False))
    elif fmt == "v7.3":
        atomic_write(mat, lambda tmp: _save_mat_v73(tmp, {"ff": ff, "meta": meta_json}))
    else:
        raise ValueError(f"mat_format must be 'auto', 'v5' or 'v7.3', got {mat_format!r}")
    return npy, mat


def _names_of(items: Any) -> list[str] | None:
    names = getattr(items, "names", None)
    if names is not None:
        return [str(n) for n in names]
    if isinstance(items, Sequence) and all(isinstance(x, (str, os.PathLike)) for x in items):
        return [Path(x).name for x in items]
    return None


# --------------------------------------------------------------------------------------------
# The extractor
# --------------------------------------------------------------------------------------------


def _run(model: nn.Module, loader: DataLoader, recipe: Recipe, device: torch.device, amp: bool,
         feature_var: str | None, progress: Progress) -> torch.Tensor:
    if amp:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        autocast: Any = torch.autocast(device_type=device.type, dtype=dtype)
    else:
        autocast = contextlib.nullcontext()
    out = []
    non_blocking = device.type == "cuda"
    with torch.inference_mode():
        for batch in loader:
            # recipe.view == "mirror": only the flipped input (D-X-Y's saved oversample crop)
            x = batch[-1 if recipe.view == "mirror" else 0].to(device, non_blocking=non_blocking)
            with autocast:
                fm = feature_map(model, x, feature_var)
            f = pool_positions(fm.float(), recipe)
            if recipe.flip:
                xf = batch[1].to(device, non_blocking=non_blocking)
                with autocast:
                    fmf = feature_map(model, xf, feature_var)
                f = f + pool_positions(fmf.float(), recipe)
            if recipe.l2:
                f = l2_normalize(f)
            out.append(f.float())
            progress.update(x.shape[0])
    return torch.cat(out) if out else torch.empty(0, 0)


def extract_features(
    model: nn.Module,
    paths_or_images: Sequence[Any] | ReIDSplit,
    preprocess: Preprocess,
    recipe: Recipe | str,
    *,
    batch_size: int = 128,
    num_workers: int | None = None,
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    checkpoint_sha256: str | None = None,
    features_out: str | os.PathLike[str] | None = None,
    feature_var: str | None = None,
    desc: str = "features",
) -> torch.Tensor:
    """Descriptors ``(N, C)`` float32 (CPU) of the images, in input order.

    ``paths_or_images``: image paths, PIL images, uint8 HxWx3 arrays, a lazy sequence of them
    (:class:`~porting.validation.datasets.CUHK03Images`) or a
    :class:`~porting.validation.datasets.ReIDSplit`. ``preprocess`` prepares each image (in
    ``num_workers`` DataLoader processes; ``None`` = one per CPU core but one, at most 16, and
    none for a list that fits in one batch; 0 = in this process). ``recipe`` (a
    :class:`Recipe` or its name) decides the flip (``preprocess(image, flip=True)``: the
    image is flipped before mean subtraction; taken as the flipped tensor when that is
    bit-identical, see :func:`flip_commutes`), the pooling and the final L2;
    ``Preprocess.flip`` is informational only.

    ``device``: ``"auto"`` | ``"cuda"`` | ``"cpu"`` (the model is moved there and set to eval).
    ``amp=False`` runs in fp32 (exact); ``amp=True`` runs the network under
    ``torch.autocast`` (fp16 on CUDA, bf16 on CPU), pooling and L2 stay fp32.

    ``cache_dir``: reuse features computed before for the same model (``checkpoint_sha256``,
    by default a digest of the state_dict), recipe, preprocessing, amp, device type and input
    list (paths with sizes and mtimes, or array bytes); a hit runs no model. ``features_out``:
    also write ``<features_out>.npy`` and ``.mat`` (see :func:`save_features`).

    Under torchrun (``WORLD_SIZE`` > 1) each rank takes a contiguous shard, and every rank
    returns the full, identical result; files are written by rank 0.
    """
    items: Any = paths_or_images.paths if isinstance(paths_or_images, ReIDSplit) \
        else paths_or_images
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(preprocess, Preprocess):
        raise TypeError(f"preprocess must be a porting.preprocess.Preprocess, got "
                        f"{type(preprocess).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    rank, world = distributed_context(dev)
    n = len(items)
    fvar = graph_feature_var(model, feature_var) if isinstance(model, GraphModule) else None

    key = material = None
    cache_npy = None
    if cache_dir is not None:
        model_id = checkpoint_sha256 or model_digest(model)
        key, material = cache_key(model_id, rec, preprocess, inputs_digest(items), amp=amp,
                                  device=dev, feature_var=fvar, exact=is_exact(model))
        cache_npy = Path(cache_dir) / f"{key}.npy"
        hit = cache_npy.is_file()
        if world > 1:
            hit = _all_min(hit, dev)
        if hit:
            feats = torch.from_numpy(np.load(cache_npy))
            if feats.shape[0] == n:
                if features_out is not None and rank == 0:
                    save_features(features_out, feats, names=_names_of(items),
                                  meta={"recipe": rec.name, "cache_key": key})
                return feats

    start, stop = shard_bounds(n, world, rank) if world > 1 else (0, n)
    data = PreprocessedImages(items, preprocess, rec.flip or rec.view == "mirror", start,
                              stop)
    if num_workers is None:
        num_workers = 0 if len(data) <= batch_size else min(16, max(1, (os.cpu_count() or 1) - 1))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=dev.type == "cuda", drop_last=False)
    model.to(dev).eval()
    shard_desc = desc if world == 1 else f"{desc} [rank 0 of {world}, shard]"
    bar = Progress(len(data), shard_desc, enabled=progress and rank == 0)
    try:
        local = _run(model, loader, rec, dev, amp, fvar, bar)
    finally:
        bar.close()
    feats = _gather_rows(local, n, world, dev) if world > 1 else local.cpu()
    feats = feats.contiguous()

    if rank == 0:
        if cache_npy is not None:
            _write_npy(cache_npy, feats.numpy())
            meta_path = cache_npy.with_suffix(".json")
            text = json.dumps({"key": key, "shape": list(feats.shape), **(material or {})},
                              indent=1, sort_keys=True)
            atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text))
        if features_out is not None:
            save_features(features_out, feats, names=_names_of(items),
                          meta={"recipe": rec.name, "preprocess": preprocess.to_dict(),
                                "amp": amp, "cache_key": key})
    return feats
