"""convert-matconvnet against MatConvNet's own outputs (every layout, v7 and v7.3)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from matv73 import save_v73

import porting
from porting.checkpoint import sha256_file
from porting.converters.compare import compare
from porting.converters.matconvnet import main as convert_main
from porting.converters.matfile import load_mat

from conftest import FIXTURES, rel_err

MCN = FIXTURES / "matconvnet"
IO = FIXTURES / "models"
TOL = 1e-4

CASES = [  # (model file, trimmed MatConvNet dump)
    ("caffenet_narrow/model.mat", "mcn_caffenet.npz"),
    ("caffenet_narrow/model.mat", "mcn_caffenet_224.npz"),
    ("caffenet_narrow/model_legacy_prebeta17.mat", "mcn_caffenet.npz"),
    ("vgg16_narrow/model.mat", "mcn_vgg16.npz"),
    ("resnet50_narrow/model.mat", "mcn_resnet50.npz"),
    ("resnet50_narrow/model.mat", "mcn_resnet50_227.npz"),
    ("resnet50_narrow/model_import_caffe_py.mat", "mcn_resnet50.npz"),
    ("resnet52_2stream_narrow/model.mat", "mcn_2stream_256.npz"),
]


def _convert(src: Path, out: Path, *extra: str) -> Path:
    assert convert_main([str(src), "-o", str(out), "-q", *extra]) == 0
    return out


def _ref(npz: str) -> dict[str, np.ndarray]:
    z = np.load(IO / npz)
    return {k: z[k] for k in z.files if not k.startswith("__")}


@pytest.mark.parametrize("model,npz", CASES, ids=[f"{m}-{n}" for m, n in CASES])
def test_every_var_matches_matconvnet(model: str, npz: str, tmp_path: Path) -> None:
    graph = porting.load(_convert(MCN / model, tmp_path / "m.pth"), canonical=False)
    rows, _ = compare(graph, _ref(npz))
    assert len(rows) >= 5
    worst = max(rows, key=lambda r: r.max_rel)
    assert worst.max_rel <= TOL, f"{worst.name}: {worst.max_rel:.2e}"


@pytest.mark.parametrize("model", ["caffenet_narrow/model.mat",
                                   "resnet52_2stream_narrow/model.mat"])
def test_v73_file_gives_identical_outputs(model: str, tmp_path: Path) -> None:
    v73 = tmp_path / "model_v73.mat"
    save_v73(v73, load_mat(MCN / model))
    a = porting.load(_convert(MCN / model, tmp_path / "a.pth"), canonical=False)
    b = porting.load(_convert(v73, tmp_path / "b.pth"), canonical=False)
    assert torch.load(tmp_path / "b.pth", weights_only=True)["meta"]["mat_version"] == "7.3"
    feeds = {v: torch.randn(1, 3, 224, 224) * 50 for v in a.inputs if v.startswith(("data",
                                                                                    "input"))}
    out = [v for v in ("prob", "pool5n", "Dist_prediction") if v in a.var_names()]
    with torch.no_grad():
        ya, yb = a(**feeds, outputs=out), b(**feeds, outputs=out)
    for v in out:
        assert torch.equal(ya[v], yb[v]), v


def test_two_stream_checkpoint_contents(tmp_path: Path, capsys) -> None:
    assert convert_main([str(MCN / "resnet52_2stream_narrow/model.mat"),
                         "-o", str(tmp_path / "m.pth")]) == 0
    printed = capsys.readouterr().out
    assert "dagnn.Square" in printed and "siamese" in printed
    ckpt = torch.load(tmp_path / "m.pth", weights_only=True)
    assert ckpt["recipe"] == "market-matconvnet"
    assert ckpt["preprocess"]["mean"] == pytest.approx([105.6920, 99.1345, 97.9152], rel=1e-6)
    assert ckpt["preprocess"]["input_size"] == [256, 256]
    assert ckpt["source"]["file"] == "model.mat"
    assert ckpt["source"]["sha256"] == sha256_file(MCN / "resnet52_2stream_narrow/model.mat")
    assert ckpt["meta"]["stats"]["train"], "epoch stats are summarised"
    # ONE parameter set used by both streams: as many tensors as the file has params.
    mat = scipy.io.loadmat(MCN / "resnet52_2stream_narrow/model.mat")
    assert len(ckpt["state_dict"]) == mat["net"][0, 0]["params"].size
    tensors = list(ckpt["state_dict"].values())
    stored = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    assert sum(stored.values()) == sum(t.numel() * t.element_size() for t in tensors)
    graph = porting.load(tmp_path / "m.pth")
    uses = [layer for layer in graph.layers if layer["params"].get("weight") == "conv1_filter"]
    assert [layer["name"] for layer in uses] == ["conv1", "conv1_2"]


def test_two_stream_arch_auto_and_test_time_feature(tmp_path: Path) -> None:
    ckpt = _convert(MCN / "resnet52_2stream_narrow/model.mat", tmp_path / "m.pth")
    canonical = porting.load(ckpt, canonical=True)
    graph = porting.load(ckpt, canonical=False)
    io = _ref("mcn_2stream_256.npz")
    x = torch.from_numpy(io["data"])
    with torch.no_grad():
        pool5n = graph(data=x, outputs=["pool5n"])["pool5n"]
    assert rel_err(pool5n, io["pool5n"]) <= TOL
    feat = canonical.embed(x, "market-matconvnet")
    ref = io["pool5n"].sum(axis=(2, 3))
    with torch.no_grad():
        fl = graph(data=torch.flip(x, dims=[3]), outputs=["pool5n"])["pool5n"]
    ref = ref + fl.sum(dim=(2, 3)).numpy()
    assert rel_err(feat, ref / np.linalg.norm(ref, axis=1, keepdims=True)) <= TOL


@pytest.mark.parametrize("model,arch", [("caffenet_narrow/model.mat", "caffenet"),
                                        ("vgg16_narrow/model.mat", "vgg16"),
                                        ("resnet50_narrow/model.mat", "resnet50")])
def test_arch_auto_imagenet_models(model: str, arch: str, tmp_path: Path) -> None:
    ckpt = _convert(MCN / model, tmp_path / "m.pth")
    assert torch.load(ckpt, weights_only=True)["arch"]["name"] == arch
    assert torch.load(_convert(MCN / model, tmp_path / "n.pth", "--arch", "none"),
                      weights_only=True)["arch"] is None


def _with_bias(weights: np.ndarray, n: int) -> np.ndarray:
    out = weights.copy()
    out[0, 1] = np.zeros((n, 1), np.float32)
    return out


def _simplenn(tmp_path: Path, overrides: dict) -> Path:
    """The CaffeNet fixture with one layer's fields changed, saved as MAT v5."""
    mat = scipy.io.loadmat(MCN / "caffenet_narrow/model.mat")
    layers = mat["layers"]
    for (index, field), value in overrides.items():
        layer = layers[0, index][0, 0]
        layer[field] = value(layer[field]) if callable(value) else value
    path = tmp_path / "edited.mat"
    scipy.io.savemat(path, {"layers": layers, "meta": mat["meta"]})
    return path


@pytest.mark.parametrize("overrides,needle", [
    ({(0, "type"): np.array(["warp"])}, "conv1.*unsupported type.*dagnn.Conv"),
    ({(0, "weights"): lambda w: _with_bias(w, 13)}, "conv1.*13 values for 12 filters"),
    ({(2, "method"): np.array(["median"])}, "pool1.*median"),
])
def test_bad_models_fail_cleanly(overrides, needle, tmp_path: Path, capsys) -> None:
    src = _simplenn(tmp_path, overrides)
    out = tmp_path / "out.pth"
    assert convert_main([str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "edited.mat" in err
    assert re.search(needle, err), err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.mat"]


def test_missing_file_and_non_mat(tmp_path: Path, capsys) -> None:
    assert convert_main([str(tmp_path / "nope.mat")]) == 2
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"\x00" * 300)
    assert convert_main([str(junk), "-o", str(tmp_path / "o.pth")]) == 2
    assert "junk.mat" in capsys.readouterr().err
    assert not (tmp_path / "o.pth").exists()
