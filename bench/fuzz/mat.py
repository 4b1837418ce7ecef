"""MatConvNet ``.mat`` mutators: struct edits saved again by scipy (v7), HDF5 edits by h5py
(v7.3)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from .common import weird_number

# --------------------------------------------------------------------------------------------
# MatConvNet .mat (v7 via scipy, v7.3 via h5py)
# --------------------------------------------------------------------------------------------

MCN_TYPES = ["conv", "pool", "relu", "lrn", "softmax", "softmaxloss", "dropout", "bnorm",
             "normalize", "loss", "custom", "sigmoid", "dagnn.Conv", "nonsense"]


def _weird_mat_value(rng: random.Random, old: Any) -> tuple[Any, str]:
    choice = rng.randrange(12)
    shape = np.shape(old) if isinstance(old, np.ndarray) else (1, 1)
    if choice == 0:
        return np.full(shape if 0 not in shape else (1, 1), weird_number(rng)), "fill"
    if choice == 1:
        return np.zeros((0, 0)), "empty"
    if choice == 2:
        return np.array("abc"), "string"
    if choice == 3:
        arr = np.asarray(old) if isinstance(old, np.ndarray) and old.dtype != object else \
            np.ones((1, 2))
        return arr.reshape(arr.shape + (1, 1))[..., None] * np.ones(2), "extra-dim"
    if choice == 4:
        return np.array([[weird_number(rng)] * rng.choice([1, 3, 5, 9])]), "length"
    if choice == 5:
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = np.ones((1, 1)), np.array("x")
        return cell, "cell"
    if choice == 6 and isinstance(old, np.ndarray) and old.dtype != object and old.size:
        arr = np.array(old, dtype=np.float64)
        arr.flat[rng.randrange(arr.size)] = weird_number(rng)
        return arr.astype(old.dtype) if old.dtype.kind == "f" else arr, "element"
    if choice == 7 and isinstance(old, np.ndarray) and old.dtype != object and old.ndim >= 2:
        return np.ascontiguousarray(np.swapaxes(old, 0, -1)), "transpose"
    if choice == 8:
        return np.array([[True]]), "logical"
    if choice == 9:
        return np.array([[1, 2]], dtype=np.int8), "int8"
    if choice == 10:
        return {"a": np.ones((1, 1))}, "struct"
    return np.full((1, 4), weird_number(rng)), "vector4"


def mat_struct_edit(rng: random.Random, mat: dict[str, Any]) -> str:
    layers = mat["layers"]
    n = layers.shape[1]
    action = rng.randrange(10)
    if action <= 4:
        i = rng.randrange(n)
        rec = layers[0, i][0, 0]
        names = rec.dtype.names
        fname = rng.choice(names)
        if fname == "weights" and rng.random() < 0.6:
            w = rec["weights"]
            if isinstance(w, np.ndarray) and w.dtype == object and w.size:
                j = rng.randrange(w.size)
                new, how = _weird_mat_value(rng, w.flat[j])
                w.flat[j] = new
                return f"layer {i} weights[{j}] {how}"
            rec["weights"] = _weird_mat_value(rng, w)[0]
            return f"layer {i} weights replaced"
        if fname == "type" and rng.random() < 0.7:
            t = rng.choice(MCN_TYPES)
            rec["type"] = np.array([t])
            return f"layer {i} type -> {t}"
        new, how = _weird_mat_value(rng, rec[fname])
        rec[fname] = new
        return f"layer {i} {fname} {how}"
    if action == 5:  # delete a field of one layer
        i = rng.randrange(n)
        rec = layers[0, i][0, 0]
        drop = rng.choice(rec.dtype.names)
        keep = [x for x in rec.dtype.names if x != drop]
        new = np.zeros((1, 1), dtype=[(x, object) for x in keep])
        for x in keep:
            new[0, 0][x] = rec[x]
        layers[0, i] = new
        return f"layer {i} field {drop} deleted"
    if action == 6:  # delete / duplicate / swap layers
        i, j = rng.randrange(n), rng.randrange(n)
        how = rng.choice(["delete", "duplicate", "swap"])
        items = list(layers[0])
        if how == "delete":
            del items[i]
        elif how == "duplicate":
            items.insert(j, items[i])
        else:
            items[i], items[j] = items[j], items[i]
        out = np.empty((1, len(items)), dtype=object)
        for k, item in enumerate(items):
            out[0, k] = item
        mat["layers"] = out
        return f"layers {how} {i} {j}"
    meta = mat["meta"][0, 0]
    if action == 7:
        norm = meta["normalization"][0, 0]
        fname = rng.choice(norm.dtype.names)
        new, how = _weird_mat_value(rng, norm[fname])
        if fname == "imageSize" and rng.random() < 0.5:
            new, how = np.array([[60000.0, 60000.0, 3.0]]), "huge"
        norm[fname] = new
        return f"meta.normalization.{fname} {how}"
    if action == 8:
        fname = rng.choice(meta.dtype.names)
        meta[fname] = _weird_mat_value(rng, meta[fname])[0]
        return f"meta.{fname} replaced"
    mat[rng.choice(["layers", "meta"])] = _weird_mat_value(rng, None)[0]
    return "top-level variable replaced"


def h5_edit(rng: random.Random, path: Path) -> str:
    import h5py

    with h5py.File(path, "r+") as f:
        items: list[tuple[str, Any]] = []
        f.visititems(lambda name, obj: items.append((name, obj)))
        name, obj = rng.choice(items)
        action = rng.randrange(7)
        if action == 0 and isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
            data = obj[()]
            data.flat[rng.randrange(data.size)] = weird_number(rng)
            obj[...] = data
            return f"h5 {name}: value"
        if action == 1:
            attrs = dict(obj.attrs)
            cls = rng.choice(["double", "single", "char", "cell", "struct", "logical", "int8",
                              "function_handle", "FileWrapper__", "garbage", ""])
            obj.attrs["MATLAB_class"] = np.bytes_(cls)
            return f"h5 {name}: MATLAB_class {attrs.get('MATLAB_class')!r} -> {cls}"
        if action == 2 and obj.attrs:
            key = rng.choice(list(obj.attrs))
            del obj.attrs[key]
            return f"h5 {name}: attribute {key} deleted"
        if action == 3 and name != "#refs#":
            del f[name]
            return f"h5 {name}: deleted"
        if action == 4 and isinstance(obj, h5py.Dataset):
            attrs = dict(obj.attrs)
            del f[name]
            shape = rng.choice([(), (1,), (3, 1, 2), (0, 0), (2, 60000)])
            dtype = rng.choice([np.float64, np.uint16, np.int64, np.uint8])
            new = f.create_dataset(name, data=np.ones(shape, dtype=dtype))
            for k, v in attrs.items():
                new.attrs[k] = v
            return f"h5 {name}: replaced by {shape} {np.dtype(dtype).name}"
        if action == 5 and isinstance(obj, h5py.Dataset) and obj.dtype == h5py.ref_dtype \
                and obj.size:
            data = obj[()]
            data.flat[rng.randrange(data.size)] = f.ref if rng.random() < 0.5 else h5py.Reference()
            obj[...] = data
            return f"h5 {name}: reference redirected"
        if action == 6 and isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu" \
                and obj.size:
            data = obj[()].astype(np.float64)
            attrs = dict(obj.attrs)
            del f[name]
            new = f.create_dataset(name, data=data.reshape(data.shape + (1,))
                                   if rng.random() < 0.5 else data.T.copy())
            for k, v in attrs.items():
                new.attrs[k] = v
            return f"h5 {name}: reshaped"
        obj.attrs["MATLAB_class"] = np.bytes_("double")
        return f"h5 {name}: retyped double"
