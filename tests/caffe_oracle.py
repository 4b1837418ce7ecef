"""OpenCV dnn as an independent Caffe runtime for tests: a tiny prototxt plus a caffemodel
written through the project's ``caffe.proto`` module, run by ``cv2.dnn.readNetFromCaffe``."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from porting.converters.caffe import proto


def caffemodel_bytes(blobs: Mapping[str, Sequence[np.ndarray]]) -> bytes:
    """A binary ``NetParameter`` holding only each named layer's blobs (float32 data)."""
    net = proto.NetParameter()
    for name, arrays in blobs.items():
        layer = net.layer.add()
        layer.name = name
        for a in arrays:
            b = layer.blobs.add()
            b.shape.dim.extend(int(d) for d in np.shape(a))
            b.data.extend(np.asarray(a, np.float32).ravel().tolist())
    return net.SerializeToString()


def input_lines(inputs: Mapping[str, np.ndarray]) -> str:
    """``input:``/``input_shape`` declarations of the given arrays."""
    out = []
    for name, a in inputs.items():
        dims = " ".join(f"dim: {d}" for d in a.shape)
        out.append(f'input: "{name}"\ninput_shape {{ {dims} }}\n')
    return "".join(out)


def run_opencv(layers: str, inputs: Mapping[str, np.ndarray],
               blobs: Mapping[str, Sequence[np.ndarray]], outputs: Sequence[str],
               folder: Path | None = None) -> list[np.ndarray]:
    """Run ``layers`` (prototxt layer text, fed ``inputs``) in OpenCV; ``outputs`` are layer
    names (OpenCV returns a layer's first top). Returns float32 arrays."""
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(folder or tmp)
        (d / "net.prototxt").write_text(input_lines(inputs) + layers)
        (d / "net.caffemodel").write_bytes(caffemodel_bytes(blobs))
        net = cv2.dnn.readNetFromCaffe(str(d / "net.prototxt"), str(d / "net.caffemodel"))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.enableFusion(False)  # a fused layer's own output would not be seen
        net.enableWinograd(False)  # another, less exact 3x3 arithmetic
        for name, a in inputs.items():
            net.setInput(np.ascontiguousarray(a, np.float32), name)
        return [np.asarray(o) for o in net.forward(list(outputs))]
