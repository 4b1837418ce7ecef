"""porting.models built with Caffe semantics, checked blob by blob against real Caffe.

Weights are read from the caffemodel with the project's Caffe reader (no converter involved);
the Caffe ResNet-50 is checked the same way, blocks and heads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from porting.converters.caffe.reader import load_net
from porting.models import VGG16, CaffeNet, ResNet50

from conftest import FIXTURES, rel_err, seeded_input

CAFFE = FIXTURES / "caffe"
IO = FIXTURES / "models"
TOL = 1e-4


def _load(model: torch.nn.Module, fixture: str, names: dict[str, str]) -> None:
    net = load_net(CAFFE / fixture / "deploy.prototxt", CAFFE / fixture / "weights.caffemodel")
    modules = dict(model.named_modules())
    slots = {"Convolution": ("weight", "bias"), "InnerProduct": ("weight", "bias"),
             "BatchNorm": ("mean", "variance", "scale_factor"), "Scale": ("weight", "bias")}
    with torch.no_grad():
        for path, cname in names.items():
            layer = next((lay for lay in net.layers if lay.name == cname), None)
            if layer is None or layer.type not in slots:
                continue
            for slot, blob in zip(slots[layer.type], layer.blobs, strict=False):
                target = getattr(modules[path], slot)
                target.copy_(torch.from_numpy(blob.reshape(target.shape)))


def _hooks(model: torch.nn.Module, wanted: dict[str, str]) -> dict[str, torch.Tensor]:
    outs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for path, key in wanted.items():
        modules[path].register_forward_hook(lambda m, i, o, k=key: outs.__setitem__(k, o))
    return outs


def _run_and_check(model: torch.nn.Module, io, wanted: dict[str, str]) -> None:
    """Run the fixture input; prob and every hooked blob must match Caffe."""
    outs = _hooks(model, wanted)
    with torch.no_grad():
        prob = torch.softmax(model(torch.from_numpy(seeded_input(io, "input/data"))), dim=1)
    assert rel_err(prob, io["blob/prob"]) <= TOL
    assert len(outs) >= 4
    for key, value in outs.items():
        assert rel_err(value, io[key]) <= TOL, key


def _widths(fixture: str, convs: list[str]) -> tuple[tuple[int, ...], int]:
    net = load_net(CAFFE / fixture / "deploy.prototxt", CAFFE / fixture / "weights.caffemodel")
    out = {layer.name: layer.blobs[0].shape[0] for layer in net.layers if layer.blobs}
    return tuple(out[c] for c in convs), out["fc7"]


@pytest.mark.parametrize("npz,cls", [("caffe_caffenet.npz", CaffeNet),
                                     ("caffe_caffenet_odd.npz", CaffeNet),
                                     ("caffe_vgg16.npz", VGG16)])
def test_caffenet_vgg16_blobs(npz: str, cls) -> None:
    io = np.load(IO / npz)
    fixture = "caffenet_narrow" if cls is CaffeNet else "vgg16_narrow"
    convs = [f"conv{i}" for i in range(1, 6)] if cls is CaffeNet else [
        f"conv{i}_1" for i in range(1, 6)]
    widths, fc = _widths(fixture, convs)
    model = cls("caffe", num_classes=io["blob/prob"].shape[1], widths=widths,
                fc_width=fc).eval()
    _load(model, fixture, {n: n for n, _ in model.named_modules() if n})
    wanted = {}
    for key in io.files:
        if key.startswith("top/"):
            wanted[key[4:]] = key
        elif key.startswith("blob/") and key != "blob/prob":
            relu = {"conv": "relu", "fc": "relu"}
            name = key[5:]
            layer = name
            for prefix, r in relu.items():
                if name.startswith(prefix) and name[len(prefix):].replace("_", "").isdigit():
                    layer = r + name[len(prefix):]
            wanted[layer if layer in dict(model.named_modules()) else name] = key
    _run_and_check(model, io, wanted)


@pytest.mark.parametrize("npz,kw", [("caffe_resnet50.npz", {}),
                                    ("caffe_resnet50_odd.npz", {}),
                                    ("caffe_resnet50_gp.npz", {"global_pool": True})])
def test_resnet50_blocks(npz: str, kw) -> None:
    io = np.load(IO / npz)
    model = ResNet50("caffe", num_classes=io["blob/prob"].shape[1], width=8, **kw).eval()
    _load(model, "resnet50_narrow", model.caffe_layer_names())
    wanted = {f"{b}": f"blob/{b}" for b in model.blocks if f"blob/{b}" in io.files}
    wanted.update({"pool1": "blob/pool1", "pool5": "blob/pool5", "fc1000": "blob/fc1000"})
    _run_and_check(model, io, {k: v for k, v in wanted.items() if v in io.files})
