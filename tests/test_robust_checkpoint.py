"""Damaged or hostile checkpoints: one CheckpointError naming the file and the field, checked
before anything is built (issue #11)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import torch

import porting
from porting.checkpoint import CheckpointError, estimate_memory, load_checkpoint, make_checkpoint
from porting.validation.cli import main as validate_main


def _graph_ckpt() -> dict:
    """A small MatConvNet-style graph: conv -> relu -> dropout -> conv, with preprocessing."""
    layers = [
        {"name": "conv1", "type": "dagnn.Conv", "op": "conv", "inputs": ["data"],
         "outputs": ["x1"], "attrs": {"pad": [1, 1, 1, 1], "stride": [1, 1]},
         "params": {"weight": "conv1f", "bias": "conv1b"}},
        {"name": "relu1", "type": "dagnn.ReLU", "op": "relu", "inputs": ["x1"],
         "outputs": ["x2"], "attrs": {"negative_slope": 0.0}, "params": {}},
        {"name": "drop", "type": "dagnn.DropOut", "op": "dropout", "inputs": ["x2"],
         "outputs": ["x3"], "attrs": {"rate": 0.5}, "params": {}},
        {"name": "fc", "type": "dagnn.Conv", "op": "conv", "inputs": ["x3"],
         "outputs": ["score"], "attrs": {}, "params": {"weight": "fcf"}},
        {"name": "loss", "type": "dagnn.Loss", "op": "softmax_loss", "inputs": ["score", "label"],
         "outputs": ["objective"], "attrs": {"label_offset": 1}, "params": {}},
    ]
    graph = {"framework": "matconvnet", "inputs": ["data", "label"], "outputs": ["score"],
             "layers": layers}
    sd = {"params.conv1f": torch.randn(4, 3, 3, 3), "params.conv1b": torch.randn(4),
          "params.fcf": torch.randn(5, 4, 1, 1)}
    pre = {"input_size": [16, 16], "mean": [1.0, 2.0, 3.0]}
    return make_checkpoint(sd, graph=graph, preprocess=pre)


def _save(tmp_path: Path, ckpt: dict, name: str = "bad.pth") -> Path:
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def _refused(tmp_path: Path, ckpt: dict, *fragments: str, **kwargs) -> str:
    path = _save(tmp_path, ckpt)
    with pytest.raises(CheckpointError) as info:
        porting.load(path, **kwargs)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_valid_graph_checkpoint_loads_and_runs(tmp_path: Path) -> None:
    model = porting.load(_save(tmp_path, _graph_ckpt(), "ok.pth"))
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 5, 16, 16)


def test_int_tensor_in_state_dict_named(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["state_dict"]["params.conv1f"] = torch.ones(4, 3, 3, 3, dtype=torch.int64)
    _refused(tmp_path, ck, "state_dict['params.conv1f']", "torch.int64", "floating point")


def test_bool_tensor_in_state_dict_named(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["state_dict"]["params.conv1b"] = torch.ones(4, dtype=torch.bool)
    _refused(tmp_path, ck, "state_dict['params.conv1b']", "torch.bool")


def test_empty_graph_dict(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["graph"] = {}
    _refused(tmp_path, ck, "graph.inputs", "missing")


@pytest.mark.parametrize("edit, field", [
    (lambda g: g.__setitem__("layers", "conv1"), "graph.layers"),
    (lambda g: g.__setitem__("layers", []), "graph.layers"),
    (lambda g: g.__setitem__("inputs", [3]), "graph.inputs"),
    (lambda g: g["layers"][0].__setitem__("attrs", [1, 2]), "attrs"),
    (lambda g: g["layers"][1].pop("op"), "graph.layers[1].op"),
    (lambda g: g["layers"][3].__setitem__("inputs", ["nowhere"]), "'nowhere'"),
    (lambda g: g["layers"][0]["params"].__setitem__("weight", "missing_w"), "missing_w"),
    (lambda g: g.__setitem__("outputs", ["ghost"]), "graph.outputs"),
])
def test_graph_structure_errors_named(tmp_path: Path, edit, field: str) -> None:
    ck = _graph_ckpt()
    edit(ck["graph"])
    _refused(tmp_path, ck, field)


@pytest.mark.parametrize("op_type, inputs", [
    ("softmax_loss", ["score"]), ("accuracy", ["score"]), ("relu", ["x1", "x2"]),
])
def test_wrong_number_of_bottoms(tmp_path: Path, op_type: str, inputs: list[str]) -> None:
    ck = _graph_ckpt()
    layer = ck["graph"]["layers"][4]
    layer.update(op=op_type, inputs=inputs)
    _refused(tmp_path, ck, "'loss'", "input(s)")


def test_input_size_string(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["preprocess"]["input_size"] = "224x224"
    _refused(tmp_path, ck, "preprocess.input_size", "two positive integers")


def test_input_size_huge_refused_without_allocating(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["preprocess"]["input_size"] = [30000, 30000]
    _refused(tmp_path, ck, "preprocess.input_size", "limit")


def test_memory_estimate_refuses_with_estimate_and_limit(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["preprocess"]["input_size"] = [12000, 12000]
    # 3 + 4 + 4 channels of 12000 x 12000 float32 are live at some point: > 4 GiB.
    assert estimate_memory(ck) > 4 << 30
    msg = _refused(tmp_path, ck, "GiB", "limit of 1.0 GiB", memory_limit=1 << 30)
    assert "would need about" in msg
    assert porting.load(tmp_path / "bad.pth", memory_limit=1 << 40) is not None  # raised limit


def test_memory_limit_from_environment(tmp_path: Path, monkeypatch) -> None:
    ck = _graph_ckpt()
    ck["preprocess"]["input_size"] = [2000, 2000]
    path = _save(tmp_path, ck)
    assert porting.load(path) is not None
    monkeypatch.setenv("REID_PORTING_MEMORY_LIMIT", "10M")
    with pytest.raises(CheckpointError, match="limit of 0.0 GiB"):
        porting.load(path)


def test_one_dimensional_conv_weight(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["state_dict"]["params.conv1f"] = torch.randn(108)
    _refused(tmp_path, ck, "'conv1'", "params.weight", "4 dimensions")


def test_dropout_rate_dict_in_graph_and_arch(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["graph"]["layers"][2]["attrs"]["rate"] = {"p": 0.5}
    _refused(tmp_path, ck, "'drop'", "attrs.rate")
    spec = {"name": "siamese", "trunk": {"name": "resnet50", "kwargs": {
        "semantics": "matconvnet", "num_classes": None, "width": 4}},
        "kwargs": {"feat_dim": 64, "num_ids": 7, "dropout": {"rate": 0.9}}}
    _refused(tmp_path, make_checkpoint({}, arch=spec), "arch.kwargs.dropout")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_parameters_refused_unless_allowed(tmp_path: Path, bad: float) -> None:
    ck = _graph_ckpt()
    ck["state_dict"]["params.fcf"][0, 0, 0, 0] = bad
    _refused(tmp_path, ck, "state_dict['params.fcf']", "non-finite", "allow_nonfinite")
    model = porting.load(tmp_path / "bad.pth", allow_nonfinite=True)
    assert not torch.isfinite(model.params["fcf"]).all()


@pytest.mark.parametrize("attr, value", [
    ("stride", [0, 1]), ("pad", [float("inf"), 0, 0, 0]), ("pad", [[1], 0, 0, 0]),
    ("dilation", [1, 1, 1]),
])
def test_conv_attributes_checked(tmp_path: Path, attr: str, value) -> None:
    ck = _graph_ckpt()
    ck["graph"]["layers"][0]["attrs"][attr] = value
    _refused(tmp_path, ck, f"attrs.{attr}")


def test_arch_spec_checked(tmp_path: Path) -> None:
    spec = {"name": "resnet50", "kwargs": {"width": "wide"}}
    _refused(tmp_path, make_checkpoint({}, arch=spec), "arch.kwargs.width")
    spec = {"name": "resnet50", "kwargs": {"width": 60000, "num_classes": None}}
    _refused(tmp_path, make_checkpoint({}, arch=spec), "would need about")


def test_state_dict_not_a_dict_and_bad_version(tmp_path: Path) -> None:
    ck = _graph_ckpt()
    ck["state_dict"] = [1, 2]
    _refused(tmp_path, ck, "state_dict", "dict of tensors")
    ck = _graph_ckpt()
    ck["version"] = "1"
    _refused(tmp_path, ck, "version")


@pytest.mark.parametrize("content, words", [
    (b"", "the file is empty"),
    (b"hello, I am a text file\n", "text file"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "NumPy"),
    (b"MATLAB 5.0 MAT-file, Platform: GLNXA64" + b" " * 100, "MAT-file"),
    (b"PK\x03\x04" + b"\x00" * 60, "zip archive"),
    (b"\x80\x02}q\x00.", "pickle"),
    (bytes(range(256)) * 4, "neither a zip archive"),
])
def test_non_checkpoint_files_say_what_they_are_not(tmp_path: Path, content: bytes,
                                                     words: str) -> None:
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and words in msg, msg
    assert not re.search(r"\(\d+\)", msg), msg  # words, not "(101)"


def test_pickle_payload_never_executes(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ck = _graph_ckpt()
    ck["meta"] = {"note": Payload()}
    path = _save(tmp_path, ck)
    with pytest.raises(CheckpointError, match="refused without unpickling"):
        porting.load(path)
    assert not marker.exists()


def test_bad_checkpoint_through_the_cli_is_one_line(tmp_path: Path, capsys) -> None:
    ck = copy.deepcopy(_graph_ckpt())
    ck["graph"] = {}
    path = _save(tmp_path, ck)
    assert validate_main(["--root", str(tmp_path), "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "graph" in err[0], err


def test_fuzz_found_arch_name_and_linear_axis(tmp_path: Path) -> None:
    """bench/fuzz.py seed 1, checkpoint cases 389 (arch.name a list: TypeError in the schema
    check itself) and 3421 (InnerProduct axis 0: IndexError in the probe forward)."""
    spec = {"name": [30000, 30000], "kwargs": {}}
    _refused(tmp_path, make_checkpoint({}, arch=spec), "arch.name")
    ck = _graph_ckpt()
    ck["graph"]["layers"].insert(4, {"name": "ip", "type": "InnerProduct", "op": "linear",
                                     "inputs": ["score"], "outputs": ["ipo"],
                                     "attrs": {"axis": 0}, "params": {"weight": "fcf"}})
    _refused(tmp_path, ck, "'ip'", "attrs.axis")
