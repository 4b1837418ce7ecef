"""convert-caffe against the outputs of a real BVLC Caffe (tests/fixtures/caffe + models/).

Every stored blob (and pre-in-place ``top/``) must match within 1e-4 relative per tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import porting
from porting.converters.caffe import main as convert_main
from porting.converters.compare import compare
from porting.converters.compare import main as compare_main

from conftest import FIXTURES, caffemodel, rel_err, seeded_input

CAFFE = FIXTURES / "caffe"
IO = FIXTURES / "models"
TOL = 1e-4

CASES = {  # fixture -> (prototxt dir, caffemodel dir, trimmed io)
    "caffenet_narrow": ("caffenet_narrow", "caffenet_narrow", "caffe_caffenet.npz"),
    "caffenet_narrow_odd": ("caffenet_narrow_odd", "caffenet_narrow", "caffe_caffenet_odd.npz"),
    "caffenet_narrow_v1": ("caffenet_narrow_v1", "caffenet_narrow_v1", "caffe_caffenet.npz"),
    "vgg16_narrow": ("vgg16_narrow", "vgg16_narrow", "caffe_vgg16.npz"),
    "resnet50_narrow": ("resnet50_narrow", "resnet50_narrow", "caffe_resnet50.npz"),
    "resnet50_narrow_odd": ("resnet50_narrow_odd", "resnet50_narrow", "caffe_resnet50_odd.npz"),
    "resnet50_narrow_gp_256x128": ("resnet50_narrow_gp_256x128", "resnet50_narrow",
                                   "caffe_resnet50_gp.npz"),
}


def _convert(tmp_path: Path, proto: str, weights: str, *extra: str, name="m.pth") -> Path:
    out = tmp_path / name
    rc = convert_main([str(CAFFE / proto / "deploy.prototxt"),
                       str(caffemodel(weights)), "-o", str(out), "-q",
                       *extra])
    assert rc == 0
    return out


def _reference(npz: str) -> dict[str, np.ndarray]:
    io = np.load(IO / npz)
    ref = {k: io[k] for k in io.files if not k.startswith("__")}
    ref["input/data"] = seeded_input(io, "input/data")
    return ref


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_every_blob_matches_caffe(fixture: str, tmp_path: Path) -> None:
    proto, weights, npz = CASES[fixture]
    model = porting.load(_convert(tmp_path, proto, weights), canonical=False)
    rows, _ = compare(model, _reference(npz))
    assert len(rows) >= 5
    worst = max(rows, key=lambda r: r.max_rel)
    assert worst.max_rel <= TOL, f"{worst.name}: {worst.max_rel:.2e}"


def test_v1_files_give_identical_outputs(tmp_path: Path) -> None:
    v1 = porting.load(_convert(tmp_path, "caffenet_narrow_v1", "caffenet_narrow_v1", name="a"))
    v2 = porting.load(_convert(tmp_path, "caffenet_narrow", "caffenet_narrow", name="b"))
    x = torch.from_numpy(seeded_input(np.load(IO / "caffe_caffenet.npz"), "input/data"))
    with torch.no_grad():
        assert torch.equal(v1(x), v2(x))


def test_compare_cli_reports_and_writes_json(tmp_path: Path, capsys) -> None:
    ckpt = _convert(tmp_path, "caffenet_narrow", "caffenet_narrow")
    ref = tmp_path / "ref.npz"
    np.savez(ref, **_reference("caffe_caffenet.npz"))
    rc = compare_main([str(ckpt), str(ref), "--json", str(tmp_path / "c.json")])
    assert rc == 0
    report = json.loads((tmp_path / "c.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names[0] == "conv1@conv1" and names[-1] == "prob"  # graph order, in-place kept
    assert report["worst"]["max_rel"] <= TOL
    assert "worst" in capsys.readouterr().out
    # A corrupted reference blob is named as the first var over tolerance, exit 1.
    bad = _reference("caffe_caffenet.npz")
    bad["blob/pool2"] = bad["blob/pool2"] * 1.01
    np.savez(ref, **bad)
    assert compare_main([str(ckpt), str(ref)]) == 1
    assert "pool2" in capsys.readouterr().err


@pytest.mark.parametrize("fixture,arch", [("caffenet_narrow", "caffenet"),
                                          ("vgg16_narrow", "vgg16"),
                                          ("resnet50_narrow", "resnet50")])
def test_arch_auto_maps_onto_canonical_models(fixture: str, arch: str, tmp_path: Path) -> None:
    proto, weights, npz = CASES[fixture]
    ckpt = _convert(tmp_path, proto, weights)
    canonical = porting.load(ckpt, canonical=True)
    assert torch.load(ckpt, weights_only=True)["arch"]["name"] == arch
    ref = _reference(npz)
    with torch.no_grad():
        logits = canonical(torch.from_numpy(ref["input/data"]))
    assert rel_err(torch.softmax(logits, 1), ref["blob/prob"]) <= TOL


def test_rgb_flips_conv1_and_records_it(tmp_path: Path) -> None:
    bgr = porting.load(_convert(tmp_path, "caffenet_narrow", "caffenet_narrow", name="bgr"))
    rgb_path = _convert(tmp_path, "caffenet_narrow", "caffenet_narrow", "--rgb", name="rgb")
    rgb = porting.load(rgb_path)
    x = torch.randn(1, 3, 227, 227) * 50
    with torch.no_grad():
        assert torch.allclose(rgb(x.flip(1)), bgr(x), atol=1e-5)
    spec = rgb.preprocess_spec
    assert spec["colour"] == "RGB"
    assert spec["mean"] == pytest.approx([105.606, 99.0468, 97.8286])
    assert bgr.preprocess_spec["colour"] == "BGR"


def _train_step(path: Path, io, dtype: torch.dtype):
    model = porting.load(path).to(dtype)
    feeds = {b: torch.from_numpy(seeded_input(io, f"train/input/{b}", batch=None)).to(dtype)
             for b in ("data", "data_p2")}
    feeds.update({b: torch.from_numpy(io[f"train/input/{b}"]).to(dtype)
                  for b in ("label", "label_p2", "label_v")})
    model.train()  # TRAIN phase: dropout (ratio 0 here); BN keeps use_global_stats: true
    outs = model(**feeds, outputs=["loss_id", "loss_id_p2", "loss_v", "fc_v", "pool5"])
    weights = {layer["outputs"][0]: layer["attrs"]["loss_weight"]
               for layer in model.layers if layer["op"] == "softmax_loss"}
    total = sum(w * outs[n] for n, w in weights.items())
    outs["pool5"].retain_grad()
    total.backward()
    return model, outs, weights, total


TRUNK = ["conv1", "res2a_branch2a", "res4f_branch2b", "res5c_branch2c", "scale5c_branch2c"]


def test_siamese_train_losses_and_gradients(tmp_path: Path) -> None:
    """The TRAIN net (dropout 0) with its three SoftmaxWithLoss layers, batch 2."""
    out = tmp_path / "train.pth"
    rc = convert_main([str(CAFFE / "siamese_resnet50_narrow" / "train_dropout0.prototxt"),
                       str(CAFFE / "siamese_resnet50_narrow" / "weights.caffemodel"),
                       "-o", str(out), "-q", "--phase", "TRAIN"])
    assert rc == 0
    io = np.load(IO / "caffe_siamese.npz")
    model, outs, weights, total = _train_step(out, io, torch.float32)
    assert weights == {"loss_id": 0.5, "loss_id_p2": 0.5, "loss_v": 1.0}
    for name in weights:
        assert rel_err(outs[name], io[f"train/loss/{name}"]) <= TOL, name
    assert rel_err(total, io["train/total_loss"]) <= TOL
    assert rel_err(outs["fc_v"], io["train/blob/fc_v"]) <= TOL
    assert rel_err(outs["pool5"].grad, io["train/diff/blob/pool5"]) <= TOL
    keys = {layer["name"]: layer["params"] for layer in model.layers}
    assert keys["fc_id"]["weight"] == keys["fc_id_p2"]["weight"]  # one tensor, two streams
    # Head gradients (Caffe sums the two streams' gradients of a shared parameter).
    for layer in ("fc_id", "fc_v"):
        g = model.params[keys[layer]["weight"]].grad
        assert rel_err(g, io[f"train/diff/param/{layer}/0"]) <= TOL, layer
    # Trunk gradients pass through ReLU masks and max-pool arg-maxes that float32 rounding
    # flips (our own float32 and float64 runs differ by up to ~1e-2 there), so the check is
    # that Caffe's gradient lies within that measured float32 noise of the exact gradient.
    exact, *_ = _train_step(out, io, torch.float64)
    for layer in TRUNK:
        key = keys[layer]["weight"]
        g32, g64 = model.params[key].grad, exact.params[key].grad
        ref = io[f"train/diff/param/{layer}/0"]
        noise = rel_err(g32.double(), g64.double().numpy())
        assert rel_err(g64, ref) <= 1.5 * noise + TOL, layer
        assert rel_err(g32, ref) <= 1.5 * noise + TOL, layer
        cos = float((g64.flatten() @ torch.from_numpy(ref).double().flatten())
                    / (g64.norm() * np.linalg.norm(ref)))
        assert cos > 0.9999, layer


def test_siamese_deploy_heads(tmp_path: Path) -> None:
    ckpt = tmp_path / "s.pth"
    assert convert_main([str(CAFFE / "siamese_resnet50_narrow" / "deploy.prototxt"),
                         str(CAFFE / "siamese_resnet50_narrow" / "weights.caffemodel"),
                         "-o", str(ckpt), "-q"]) == 0
    model = porting.load(ckpt)
    io = np.load(IO / "caffe_siamese.npz")
    d1 = seeded_input(io, "train/input/data", batch=None)[:1]
    d2 = seeded_input(io, "train/input/data_p2", batch=None)[:1]
    with torch.no_grad():
        outs = model(data=torch.from_numpy(d1), data_p2=torch.from_numpy(d2),
                     label=torch.zeros(1), label_p2=torch.zeros(1), label_v=torch.zeros(1),
                     outputs=["pool5", "pool5_p2", "fc_v"])
    for k in ("pool5", "pool5_p2", "fc_v"):
        assert rel_err(outs[k], io[f"blob/{k}"]) <= TOL, k


def test_preprocessing_from_a_train_only_data_layer(tmp_path: Path) -> None:
    """The TEST net has no data layer; crop and mean still come from the TRAIN one."""
    text = (CAFFE / "caffenet_narrow" / "deploy.prototxt").read_text()
    head, body = text.split("\n", 1)
    data = ('layer { name: "train_data" type: "ImageData" top: "data" top: "label"\n'
            '  include { phase: TRAIN }\n'
            '  transform_param { crop_size: 227 mirror: true mean_value: 1.5 mean_value: 2.5'
            ' mean_value: 3.5 }\n'
            '  image_data_param { source: "list.txt" new_height: 256 new_width: 256 } }\n')
    proto = tmp_path / "with_data.prototxt"
    proto.write_text(head + "\n" + data + body)
    out = tmp_path / "m.pth"
    assert convert_main([str(proto), str(CAFFE / "caffenet_narrow" / "weights.caffemodel"),
                         "-o", str(out), "-q"]) == 0
    spec = porting.load(out).preprocess_spec
    assert spec["mean"] == pytest.approx([1.5, 2.5, 3.5])
    assert spec["input_size"] == [227, 227]


def test_checkpoint_records_the_caffemodel_digest(tmp_path: Path) -> None:
    from porting.checkpoint import load_checkpoint, sha256_file

    out = _convert(tmp_path, "caffenet_narrow", "caffenet_narrow")
    source = load_checkpoint(out)["source"]
    assert source["file"] == "weights.caffemodel"
    assert source["sha256"] == sha256_file(CAFFE / "caffenet_narrow" / "weights.caffemodel")
