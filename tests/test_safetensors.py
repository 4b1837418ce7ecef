"""Checkpoints as ``.safetensors``: the same checkpoint as the ``.pth``, readable without the
project's code, refused in one line when its metadata or dtypes are not what the format allows."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import porting
from porting.checkpoint import (
    CheckpointError,
    load_checkpoint,
    make_checkpoint,
    read_checkpoint,
    record_measurement,
    save_checkpoint,
)
from porting.convert_checkpoint import main as convert_checkpoint
from porting.convert_checkpoint import same
from porting.converters.caffe import main as convert_caffe
from porting.converters.compare import main as compare

from conftest import FIXTURES

CAFFENET = FIXTURES / "caffe" / "caffenet_narrow"


@pytest.fixture(scope="module")
def caffenet_st(tmp_path_factory) -> Path:
    """The narrow Caffe CaffeNet converted straight to .safetensors by convert-caffe."""
    out = tmp_path_factory.mktemp("st") / "caffenet.safetensors"
    assert convert_caffe([str(CAFFENET / "deploy.prototxt"),
                          str(CAFFENET / "weights.caffemodel"), "-o", str(out), "-q",
                          "--arch", "none"]) == 0
    return out


def test_opens_with_safe_open_and_no_project_code(caffenet_st: Path, ckpts) -> None:
    code = f"""
import json, sys
from safetensors import safe_open
with safe_open({str(caffenet_st)!r}, framework="np") as f:
    meta = f.metadata()
    arrays = {{k: f.get_tensor(k) for k in f.keys()}}
graph = json.loads(meta["graph"])
assert json.loads(meta["format"]) == "reid-porting"
assert not any(m == "porting" or m.startswith("porting.") for m in sys.modules)
print(json.dumps({{"n": len(arrays), "layers": len(graph["layers"]),
                  "sha": json.loads(meta["source"])["sha256"],
                  "sum": float(sum(float(a.astype("float64").sum()) for a in arrays.values()))}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=caffenet_st.parent)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    twin = torch.load(ckpts["caffe_caffenet"], weights_only=True)
    assert seen["n"] == len(twin["state_dict"])
    assert seen["layers"] == len(twin["graph"]["layers"])
    assert seen["sha"] == twin["source"]["sha256"]
    total = sum(float(t.double().sum()) for t in twin["state_dict"].values())
    assert seen["sum"] == total


def test_loads_and_matches_its_pth_twin_bit_for_bit(caffenet_st: Path, ckpts) -> None:
    pth = ckpts["caffe_caffenet"]
    a, b = load_checkpoint(pth), load_checkpoint(caffenet_st)
    assert same(a["state_dict"], b["state_dict"]) and a["graph"] == b["graph"]
    assert a["preprocess"] == b["preprocess"] and a["source"] == b["source"]
    x = torch.from_numpy(np.random.RandomState(0).uniform(-100, 100, (2, 3, 200, 215))
                         .astype(np.float32))
    m1, m2 = porting.load(pth), porting.load(caffenet_st)
    outs = list(m1.graph["outputs"]) + ["conv1", "pool5"]
    o1, o2 = m1(data=x, outputs=outs), m2(data=x, outputs=outs)
    assert all(torch.equal(o1[k], o2[k]) for k in outs)
    e1 = porting.FeatureExtractor(pth, device="cpu", feature_var="fc7")
    e2 = porting.FeatureExtractor(caffenet_st, device="cpu", feature_var="fc7")
    img = np.random.RandomState(1).randint(0, 256, (120, 60, 3), dtype=np.uint8)
    assert torch.equal(e1([img]), e2([img]))


def test_passes_compare_against_its_source_dump(caffenet_st: Path, tmp_path: Path) -> None:
    report = tmp_path / "compare.json"
    assert compare([str(caffenet_st), str(FIXTURES / "models" / "caffe_caffenet.npz"),
                    "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["rows"]
    assert len(rows) > 5 and all(r["status"] == "ok" for r in rows)


def test_shared_parameters_stay_one_tensor(ckpts, tmp_path: Path) -> None:
    """The two streams of the paper's net name the same parameter-table keys: the file holds
    each once, and both streams read that one tensor back."""
    pth = ckpts["two_stream"]
    st = tmp_path / "two_stream.safetensors"
    assert convert_checkpoint([str(pth), str(st), "-q"]) == 0
    ck = read_checkpoint(st)
    uses: dict[str, int] = {}
    for layer in ck["graph"]["layers"]:
        for key in layer.get("params", {}).values():
            uses[key] = uses.get(key, 0) + 1
    shared = [k for k, n in uses.items() if n > 1]
    assert shared  # conv1 etc. are read by both streams
    with safe_open(str(st), framework="pt") as f:
        assert sorted(f.keys()) == sorted(ck["state_dict"])
    model = porting.load(st)
    assert len(model.state_dict()) == len(ck["state_dict"])


def test_convert_checkpoint_both_ways(ckpts, tmp_path: Path) -> None:
    pth = ckpts["two_stream"]
    st, back = tmp_path / "a.safetensors", tmp_path / "b.pth"
    assert convert_checkpoint([str(pth), str(st), "-q"]) == 0
    assert convert_checkpoint([str(st), str(back), "-q"]) == 0
    with open(back, "rb") as f:
        assert f.read(4) == b"PK\x03\x04"  # torch.save's zip again
    orig, again = torch.load(pth, weights_only=True), torch.load(back, weights_only=True)
    assert same(orig, again)


def _training_like() -> dict:
    sd = {"w": torch.randn(3, 4), "b": torch.randn(4, dtype=torch.float64),
          "bn.num_batches_tracked": torch.tensor(7)}
    sd["w_alias"] = sd["w"]  # the same tensor under two names
    buf = torch.arange(10, dtype=torch.float32)
    ck = make_checkpoint(sd, arch={"name": "caffenet", "kwargs": {}},
                         meta={"history": [{"loss": float("nan")}, {"loss": float("inf")}],
                               "size": (3, 4), "__odd__": 1})
    ck["training"] = {"optimizer": {"state": {0: {"momentum_buffer": buf[:4]},
                                              1: {"momentum_buffer": buf[4:]}},
                                    "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
                      "weird": {"__tensor__": "not a tag"}}
    return ck


def test_every_field_round_trips_exactly(tmp_path: Path) -> None:
    ck = _training_like()
    path = tmp_path / "t.safetensors"
    save_checkpoint(path, ck)
    back = read_checkpoint(path)
    assert same(ck, back)
    assert back["state_dict"]["w_alias"] is back["state_dict"]["w"]  # stored once
    with safe_open(str(path), framework="pt") as f:
        assert "w_alias" not in f.keys() and len(list(f.keys())) == 5


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    for w in words:
        assert w in msg, msg
    out = path.with_name("out.pth")
    rc = convert_checkpoint([str(path), str(out)])
    assert rc == 2 and not out.exists()
    return msg


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _valid_parts(caffenet_st: Path) -> tuple[dict, dict]:
    with safe_open(str(caffenet_st), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def test_pickled_metadata_is_refused_without_unpickling(caffenet_st: Path,
                                                        tmp_path: Path) -> None:
    tensors, meta = _valid_parts(caffenet_st)
    marker = tmp_path / "unpickled"
    meta["preprocess"] = pickle.dumps(_Boom(str(marker)), protocol=0).decode("latin-1")
    evil = tmp_path / "evil.safetensors"
    save_file(tensors, str(evil), metadata=meta)
    _refused(evil, "'preprocess'", "not JSON")
    assert not marker.exists()


def test_non_json_constants_and_unknown_tags_are_refused(caffenet_st: Path,
                                                         tmp_path: Path) -> None:
    tensors, meta = _valid_parts(caffenet_st)
    for i, (field, text, words) in enumerate([
            ("meta", '{"x": NaN}', ("'meta'", "not JSON")),
            ("meta", '{"x": {"__pickle__": "gASV"}}', ("'meta'", "__pickle__")),
            ("recipe", '{"__tensor__": "nope"}', ("'recipe'", "nope"))]):
        bad = tmp_path / f"bad{i}.safetensors"
        save_file(tensors, str(bad), metadata={**meta, field: text})
        _refused(bad, *words)


def test_disallowed_dtype_is_refused(caffenet_st: Path, tmp_path: Path) -> None:
    tensors, meta = _valid_parts(caffenet_st)
    name = sorted(tensors)[0]
    for dtype in (torch.uint8, torch.int32, torch.float8_e4m3fn):
        bad = tmp_path / f"dtype_{str(dtype).split('.')[-1]}.safetensors"
        save_file({**tensors, name: tensors[name].to(dtype)}, str(bad), metadata=meta)
        _refused(bad, repr(name), "dtype")


def test_unknown_layout_foreign_files_and_stray_tensors_are_refused(caffenet_st: Path,
                                                                     tmp_path: Path) -> None:
    tensors, meta = _valid_parts(caffenet_st)
    future = tmp_path / "future.safetensors"
    save_file(tensors, str(future), metadata={**meta, "reid_porting.safetensors": "2"})
    _refused(future, "layout version", "upgrade")
    foreign = tmp_path / "foreign.safetensors"
    save_file(tensors, str(foreign))
    _refused(foreign, "not a reid-porting checkpoint")
    stray = tmp_path / "stray.safetensors"
    save_file({**tensors, "extra": torch.zeros(2)}, str(stray), metadata=meta)
    _refused(stray, "'extra'", "not referred to")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(caffenet_st.read_bytes()[:-100])
    _refused(truncated, "safetensors")
    text = tmp_path / "text.safetensors"
    text.write_text("name: 'x'\n")
    _refused(text, "not a safetensors file")


def test_schema_check_applies_to_safetensors(caffenet_st: Path, tmp_path: Path) -> None:
    tensors, meta = _valid_parts(caffenet_st)
    pre = json.loads(meta["preprocess"])
    pre["input_size"] = [0, 227]
    bad = tmp_path / "schema.safetensors"
    save_file(tensors, str(bad), metadata={**meta, "preprocess": json.dumps(pre)})
    _refused(bad, "preprocess.input_size")
    graph = json.loads(meta["graph"])
    del graph["layers"][0]["params"]["weight"]
    bad = tmp_path / "schema2.safetensors"
    save_file(tensors, str(bad), metadata={**meta, "graph": json.dumps(graph)})
    _refused(bad, "graph")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_record_measurement_keeps_the_format(tmp_path: Path, suffix: str) -> None:
    ck = _training_like()
    path = tmp_path / f"m{suffix}"
    save_checkpoint(path, ck)
    mode = os.stat(path).st_mode
    record_measurement(path, "compare", {"worst": {"name": "fc7", "max_rel": 1.5e-6}})
    record_measurement(path, "validate.market1501", {"mAP": 59.87})
    back = read_checkpoint(path)
    assert back["measurements"] == {"compare": {"worst": {"name": "fc7", "max_rel": 1.5e-6}},
                                    "validate.market1501": {"mAP": 59.87}}
    assert same(back["state_dict"], ck["state_dict"]) and os.stat(path).st_mode == mode
    with open(path, "rb") as f:
        assert (f.read(2) == b"PK") == (suffix == ".pth")
    with pytest.raises(ValueError, match="not JSON-able"):
        record_measurement(path, "bad", {"x": float("nan")})
    assert read_checkpoint(path)["measurements"] == back["measurements"]


def test_optimizer_state_resumes_identically(tmp_path: Path) -> None:
    """A training checkpoint's optimizer state (integer-keyed, momentum tensors) read back from
    .safetensors continues the run exactly as the uninterrupted one."""
    def setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(3)
        net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        return net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer, i: int) -> None:
        g = torch.Generator().manual_seed(i)
        opt.zero_grad()
        net(torch.randn(8, 5, generator=g)).square().sum().backward()
        opt.step()

    net, opt = setup()
    for i in range(2):
        step(net, opt, i)
    path = tmp_path / "state.safetensors"
    ck = make_checkpoint(net.state_dict(), arch={"name": "caffenet", "kwargs": {}})
    ck["training"] = {"optimizer": opt.state_dict(), "iteration": 2}
    save_checkpoint(path, ck)
    step(net, opt, 2)  # the uninterrupted run

    back = read_checkpoint(path)
    net2, opt2 = setup()
    net2.load_state_dict(back["state_dict"])
    opt2.load_state_dict(back["training"]["optimizer"])
    step(net2, opt2, 2)
    assert same(dict(net.state_dict()), dict(net2.state_dict()))


def test_export_reads_it(caffenet_st: Path, tmp_path: Path) -> None:
    from porting.checkpoint import sha256_file
    from porting.export.cli import main as export

    out = tmp_path / "net.pt"
    assert export([str(caffenet_st), "--torchscript", str(out), "--feature-var", "fc7",
                   "-q"]) == 0
    report = json.loads(Path(f"{out}.json").read_text())
    assert report["metadata"]["reid_porting.checkpoint_sha256"] == sha256_file(caffenet_st)
