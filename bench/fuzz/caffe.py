"""Caffe mutators: caffemodel protobuf edits through the project's schema, prototxt text edits."""

from __future__ import annotations

import random
import re

# --------------------------------------------------------------------------------------------
# Caffe: caffemodel protobuf edits and prototxt text edits
# --------------------------------------------------------------------------------------------

CAFFE_TYPES = ["Convolution", "Pooling", "ReLU", "LRN", "InnerProduct", "Dropout", "Softmax",
               "SoftmaxWithLoss", "Accuracy", "Eltwise", "Concat", "Split", "BatchNorm", "Scale",
               "Flatten", "Reshape", "Slice", "Power", "Input", "Data", "Bogus"]


def caffemodel_edit(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    from porting.converters.caffe import proto as cp

    net = cp.NetParameter()
    net.ParseFromString(data)
    layers = net.layer
    with_blobs = [layer for layer in layers if len(layer.blobs)]
    action = rng.randrange(9)
    layer = rng.choice(with_blobs if with_blobs and action < 5 else list(layers))
    what = f"layer {layer.name!r}"
    if action == 0 and layer.blobs:
        blob = rng.choice(layer.blobs)
        dims = list(blob.shape.dim)
        if dims:
            k = rng.randrange(len(dims))
            dims[k] = rng.choice([0, 1, dims[k] + 1, dims[k] * 2, 2 ** 31])
        if rng.random() < 0.3:
            dims = dims[1:] if rng.random() < 0.5 else dims + [1]
        del blob.shape.dim[:]
        blob.shape.dim.extend(dims)
        return net.SerializeToString(), f"{what}: blob shape -> {dims}"
    if action == 1 and layer.blobs:
        blob = rng.choice(layer.blobs)
        if blob.data:
            blob.data[rng.randrange(len(blob.data))] = rng.choice(
                [float("nan"), float("inf"), -float("inf"), 3e38])
        return net.SerializeToString(), f"{what}: non-finite weight"
    if action == 2 and layer.blobs:
        blob = rng.choice(layer.blobs)
        n = len(blob.data)
        keep = rng.choice([0, n // 2, max(0, n - 1)])
        del blob.data[keep:]
        return net.SerializeToString(), f"{what}: blob data cut to {keep}/{n}"
    if action == 3 and len(layer.blobs) >= 2:
        a = cp.BlobProto()
        a.CopyFrom(layer.blobs[0])
        layer.blobs[0].CopyFrom(layer.blobs[1])
        layer.blobs[1].CopyFrom(a)
        return net.SerializeToString(), f"{what}: blobs swapped"
    if action == 4 and layer.blobs:
        del layer.blobs[rng.randrange(len(layer.blobs))]
        return net.SerializeToString(), f"{what}: blob deleted"
    if action == 5:
        t = rng.choice(CAFFE_TYPES)
        layer.type = t
        return net.SerializeToString(), f"{what}: type -> {t}"
    if action == 6:
        layer.name = rng.choice(["", "conv1", layers[0].name, "x" * 300])
        return net.SerializeToString(), f"{what}: renamed {layer.name[:10]!r}"
    if action == 7 and layer.blobs:
        blob = layer.blobs.add()
        blob.CopyFrom(layer.blobs[0])
        return net.SerializeToString(), f"{what}: extra blob"
    dup = layers.add()
    dup.CopyFrom(layer)
    return net.SerializeToString(), f"{what}: duplicated"


_NUMBER = re.compile(r"(?<=: )-?\d+(\.\d+)?(e-?\d+)?")


def prototxt_edit(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.splitlines()
    action = rng.randrange(9)
    if action <= 2:
        spots = [m for m in _NUMBER.finditer(text)]
        if spots:
            m = rng.choice(spots)
            new = rng.choice(["0", "-1", "60000", "1e40", "inf", "nan", "2.5", "4294967296",
                              "99999999999999999999", "-0"])
            return text[:m.start()] + new + text[m.end():], f"number {m.group()} -> {new}"
    if action == 3:
        depth = rng.choice([50, 600, 5000])
        return text + "\nlayer { " * depth + "}" * depth + "\n", f"nesting {depth}"
    if action == 4:
        idx = [i for i, line in enumerate(lines) if "type:" in line]
        if idx:
            i = rng.choice(idx)
            t = rng.choice(CAFFE_TYPES)
            lines[i] = re.sub(r'type:\s*"[^"]*"', f'type: "{t}"', lines[i])
            return "\n".join(lines), f"line {i + 1} type -> {t}"
    if action == 5:
        idx = [i for i, line in enumerate(lines) if "bottom:" in line or "top:" in line]
        if idx:
            i = rng.choice(idx)
            how = rng.choice(["delete", "duplicate", "rename"])
            if how == "delete":
                del lines[i]
            elif how == "duplicate":
                lines.insert(i, lines[i])
            else:
                lines[i] = re.sub(r'"[^"]*"', '"ghost"', lines[i])
            return "\n".join(lines), f"line {i + 1} bottom/top {how}"
    if action == 6 and lines:
        i = rng.randrange(len(lines))
        how = rng.choice(["delete", "duplicate"])
        if how == "delete":
            del lines[i]
        else:
            lines.insert(i, lines[i])
        return "\n".join(lines), f"line {i + 1} {how}"
    if action == 7:
        shape = rng.choice(["dim: 1 dim: 3 dim: 60000 dim: 60000", "dim: 0 dim: 3 dim: 2 dim: 2",
                            "dim: 1 dim: 3", "dim: -1 dim: 3 dim: 227 dim: 227"])
        return (re.sub(r"input_shape\s*\{[^}]*\}", f"input_shape {{ {shape} }}", text),
                f"input_shape -> {shape}")
    cut = rng.randrange(len(text) + 1)
    return text[:cut], f"truncate at {cut}"
