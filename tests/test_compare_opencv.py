"""``compare CKPT --opencv``: every Caffe fixture net against its own prototxt + caffemodel run
by OpenCV's dnn module (an independent Caffe runtime); a checkpoint changed after conversion
fails; missing or changed source files are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from porting.converters.caffe import main as convert_caffe
from porting.converters.compare import main as compare_main

from conftest import FIXTURES, caffemodel

CAFFE = FIXTURES / "caffe"
NETS = sorted(p.parent.name for p in CAFFE.glob("*/meta.json"))


def _weights(net: str) -> Path:
    meta = json.loads((CAFFE / net / "meta.json").read_text())
    return caffemodel(meta.get("same_weights_as") or net)


def _convert(net: str, out: Path, *extra: str, prototxt: Path | None = None) -> Path:
    rc = convert_caffe([str(prototxt or CAFFE / net / "deploy.prototxt"), str(_weights(net)),
                        "-o", str(out), "-q", "--arch", "none", *extra])
    assert rc == 0
    return out


def _compare(args: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = compare_main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_every_caffe_fixture_is_covered() -> None:
    assert len(NETS) == 8 and "siamese_resnet50_narrow" in NETS


@pytest.mark.parametrize("net", NETS)
def test_every_caffe_fixture_net_agrees_with_opencv(net: str, tmp_path, capsys) -> None:
    ckpt = _convert(net, tmp_path / "m.pth")
    report = tmp_path / "r.json"
    rc, out, err = _compare([ckpt, "--opencv", "--batch", "1", "--allow-missing", "--json",
                             report], capsys)
    assert rc == 0, err
    got = json.loads(report.read_text())
    print(f"{net}: worst {got['worst']['name']} {got['worst']['max_rel']:.3g} relative, "
          f"{got['compared']} of {got['outputs']} outputs")
    assert got["passed"] and got["compared"] >= 20
    unchecked = {n["key"]: n["reason"] for n in got["not_compared"] if not n["input"]}
    if net.startswith("siamese"):  # three SoftmaxWithLoss at the end: OpenCV has none
        assert unchecked == {k: f"OpenCV's dnn has no SoftmaxWithLoss layer ({k!r})"
                             for k in ("loss_id", "loss_id_p2", "loss_v")}
    else:
        assert unchecked == {}
    # "fp32" rows: over --rtol, but OpenCV is as close to the float64 run as we are
    assert all(r["status"] in ("ok", "fp32") for r in got["rows"])
    assert sum(r["status"] == "fp32" for r in got["rows"]) <= 3


def test_a_checkpoint_changed_after_conversion_fails(tmp_path, capsys) -> None:
    ckpt = _convert("caffenet_narrow", tmp_path / "m.pth")
    data = torch.load(ckpt, weights_only=True)
    key = next(k for k in data["state_dict"] if "conv3" in k and k.endswith("/0"))
    data["state_dict"][key][0, 0, 1, 1] += 0.05
    torch.save(data, ckpt)
    rc, out, err = _compare([ckpt, "--opencv", "--batch", "2"], capsys)
    assert rc == 1
    assert "first var over tolerance: conv3@conv3" in err
    assert "| conv2 (relu2) " in out and "FAIL" not in out.split("conv3@conv3")[0]


def test_an_rgb_checkpoint_is_fed_bgr_on_the_opencv_side(tmp_path, capsys) -> None:
    ckpt = _convert("caffenet_narrow", tmp_path / "rgb.pth", "--rgb")
    rc, out, err = _compare([ckpt, "--opencv", "--batch", "2"], capsys)
    assert rc == 0, err
    assert "23 of 23 outputs compared" in out


def test_an_image_input_in_the_checkpoint_preprocessing(tmp_path, capsys) -> None:
    ckpt = _convert("caffenet_narrow", tmp_path / "m.pth")
    image = FIXTURES / "preprocess" / "0066_c3s1_008701_03.jpg"
    rc, out, err = _compare([ckpt, "--opencv", "--input", image, image, "--json",
                             tmp_path / "r.json"], capsys)
    assert rc == 0, err
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert rows[0]["shape"][0] == 2 and rows[0]["max_ref"] > 0


def test_changed_or_missing_source_files_are_refused(tmp_path, capsys) -> None:
    proto = tmp_path / "deploy.prototxt"
    shutil.copy(CAFFE / "caffenet_narrow" / "deploy.prototxt", proto)
    ckpt = _convert("caffenet_narrow", tmp_path / "m.pth", prototxt=proto)
    proto.write_text(proto.read_text() + "\n# edited\n")
    rc, out, err = _compare([ckpt, "--opencv"], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "deploy.prototxt" in err and "SHA-256" in err and "--prototxt" in err
    # named explicitly, a file that differs is used, with a note
    rc, _, err = _compare([ckpt, "--opencv", "--prototxt", proto], capsys)
    assert rc == 0 and "note:" in err and "not the prototxt that was converted" in err
    proto.unlink()
    rc, out, err = _compare([ckpt, "--opencv"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "no such file" in err


def test_a_layer_type_opencv_lacks_is_refused_by_name(tmp_path, capsys) -> None:
    # caffe-reid's PairEuclidean (squared difference of the batch's pairs), read by a Power:
    # the converter has it, OpenCV's dnn does not, and the net cannot run without it
    proto = tmp_path / "deploy.prototxt"
    proto.write_text((CAFFE / "caffenet_narrow" / "deploy.prototxt").read_text() +
                     'layer {\n  name: "pe"\n  type: "PairEuclidean"\n  bottom: "fc7"\n'
                     '  top: "pe"\n}\nlayer {\n  name: "pw"\n  type: "Power"\n'
                     '  bottom: "pe"\n  top: "pw"\n}\n')
    ckpt = _convert("caffenet_narrow", tmp_path / "m.pth", prototxt=proto)
    rc, out, err = _compare([ckpt, "--opencv"], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "'pe'" in err and "PairEuclidean" in err and "OpenCV" in err


def test_opencv_is_for_caffe_checkpoints(ckpts, capsys) -> None:
    rc, out, err = _compare([ckpts["mcn_caffenet"], "--opencv"], capsys)
    assert rc == 2 and "matconvnet" in err and err.count("\n") == 1
