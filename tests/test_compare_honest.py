"""``compare`` never says ok while a reference output goes unchecked (issue 22): every key not
compared is listed with its reason, and the exit status is 1 unless ``--allow-missing``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from porting.checkpoint import load_checkpoint
from porting.converters.caffe import main as convert_caffe
from porting.converters.compare import main as compare_main

from conftest import FIXTURES

MODELS = FIXTURES / "models"


def _run(args: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = compare_main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _not_compared(out: str) -> dict[str, str]:
    section = out.split("not compared:", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines()[3:]]
    return {key.strip(): reason.strip() for key, reason in rows}


def test_two_stream_dump_names_the_outputs_the_graph_lacks(tmp_path, capsys) -> None:
    # mcn_2stream_256.npz holds 20 keys: 5 graph inputs and 15 outputs; converted without the
    # paper's test-time heads, the graph lacks two of them (pool5n and pool5n_2).
    from porting.converters.matconvnet import main as convert_matconvnet

    ckpt = tmp_path / "no_head.pth"
    model = FIXTURES / "matconvnet" / "resnet52_2stream_narrow" / "model.mat"
    assert convert_matconvnet([str(model), "-o", str(ckpt), "-q", "--no-test-head"]) == 0
    ref = MODELS / "mcn_2stream_256.npz"
    report = tmp_path / "r.json"
    rc, out, err = _run([ckpt, ref, "--json", report], capsys)
    assert rc == 1
    assert "13 of 15 outputs compared" in out
    listed = _not_compared(out)
    assert listed["pool5n"] == listed["pool5n_2"] == "no var of that name"
    assert {k for k, r in listed.items() if "graph input" in r} == {
        "data", "label", "data_2", "label_2", "label_f"}
    assert "pool5n_2" in err and "--allow-missing" in err
    payload = json.loads(report.read_text())
    assert (payload["compared"], payload["outputs"], payload["passed"]) == (13, 15, False)
    assert {"key": "pool5n_2", "reason": "no var of that name", "input": False} in \
        payload["not_compared"]
    rc, out, _ = _run([ckpt, ref, "--allow-missing"], capsys)
    assert rc == 0 and "pool5n_2" in out


def test_two_stream_conversion_has_both_streams_test_heads(ckpts, capsys) -> None:
    """The paper's lrn_test head is added on each stream's pool5, as the dump of MatConvNet
    holds it: every output of the dump is compared."""
    rc, out, _ = _run([ckpts["two_stream"], MODELS / "mcn_2stream_256.npz"], capsys)
    assert rc == 0 and "15 of 15 outputs compared" in out


def test_misnamed_outputs_are_listed_not_dropped(ckpts, tmp_path, capsys) -> None:
    z = np.load(MODELS / "mcn_caffenet.npz")
    ref = tmp_path / "typo.npz"
    np.savez(ref, input=z["input"], pool5=z["pool5"], FC8=z["fc8"], prob_typo=z["prob"],
             note=np.array("not a tensor"), **{"train/fc8": z["fc8"]})
    rc, out, err = _run([ckpts["mcn_caffenet"], ref], capsys)
    assert rc == 1
    assert "1 of 5 outputs compared" in out
    listed = _not_compared(out)
    assert listed["FC8"] == "no var of that name (did you mean 'fc8'?)"
    assert listed["prob_typo"] == "no var of that name"
    assert "not numeric" in listed["note"]
    assert "unknown key prefix 'train/'" in listed["train/fc8"]
    assert "graph input" in listed["input"]
    assert "FC8" in err
    assert _run([ckpts["mcn_caffenet"], ref, "--allow-missing"], capsys)[0] == 0


def test_table_has_a_header_per_column_and_max_ref(ckpts, capsys) -> None:
    rc, out, _ = _run([ckpts["mcn_caffenet"], MODELS / "mcn_caffenet.npz"], capsys)
    assert rc == 0
    header = [c.strip() for c in out.splitlines()[0].strip("|").split("|")]
    assert header == ["var", "ours", "reference", "max abs(ref)", "max abs", "max rel", "status"]
    z = np.load(MODELS / "mcn_caffenet.npz")
    row = next(line for line in out.splitlines() if line.startswith("| pool5 "))
    max_ref = float(row.strip("|").split("|")[3])
    assert abs(max_ref - np.abs(z["pool5"]).max()) <= 1e-2 * max_ref  # 3 digits printed


def test_reversed_channels_are_named_as_the_cause(tmp_path, capsys) -> None:
    caffe = FIXTURES / "caffe" / "caffenet_narrow"
    ckpt = tmp_path / "rgb.pth"
    assert convert_caffe([str(caffe / "deploy.prototxt"), str(caffe / "weights.caffemodel"),
                          "-o", str(ckpt), "-q", "--rgb", "--arch", "none"]) == 0
    rc, out, err = _run([ckpt, MODELS / "caffe_caffenet.npz"], capsys)
    assert rc == 1
    assert "first var over tolerance: conv1@conv1" in err
    assert "hint: conv1@conv1 agrees" in err and "channels are reversed" in err


def test_a_genuine_conv_error_gets_no_channel_hint(ckpts, tmp_path, capsys) -> None:
    z = np.load(MODELS / "caffe_caffenet.npz")
    arrays = {k: z[k] for k in z.files}
    arrays["top/conv1"] = arrays["top/conv1"] * 1.01
    ref = tmp_path / "off.npz"
    np.savez(ref, **arrays)
    rc, _, err = _run([ckpts["caffe_caffenet"], ref], capsys)
    assert rc == 1 and "conv1@conv1" in err and "hint" not in err


def test_record_stores_the_agreement_in_the_checkpoint(ckpts, tmp_path, capsys) -> None:
    ckpt = tmp_path / "m.pth"
    shutil.copy(ckpts["two_stream"], ckpt)
    ref = MODELS / "mcn_2stream_256.npz"
    assert _run([ckpt, ref, "--record"], capsys)[0] == 0
    got = load_checkpoint(ckpt)["measurements"]["compare"]
    assert (got["compared"], got["outputs"], got["passed"]) == (15, 15, True)
    assert got["not_compared"] == {}
    assert set(got["worst_relative_error"]) >= {"pool5", "ODist", "pool5n", "pool5n_2"}
    assert max(got["worst_relative_error"].values()) <= got["rtol"]
    assert got["source"]["sha256"] and Path(got["source"]["reference"]) == ref
