"""Bad Caffe inputs (issue #11): each ends in one ``error:`` line naming the file and the
layer or field in Caffe's words, exit status 2, no traceback and no output file.

Every case is built in a temporary folder from the caffenet_narrow fixture."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from porting.converters.caffe import main as convert_caffe
from porting.converters.caffe import proto as cp

from conftest import FIXTURES
from conftest import refused as _refused

SRC = FIXTURES / "caffe" / "caffenet_narrow"


@pytest.fixture
def net(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the caffenet_narrow prototxt and caffemodel."""
    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    shutil.copy(SRC / "deploy.prototxt", proto)
    shutil.copy(SRC / "weights.caffemodel", weights)
    return proto, weights


def _edit_prototxt(path: Path, edit) -> None:
    net = cp.NetParameter()
    text_format.Parse(path.read_text(), net, descriptor_pool=cp.POOL)
    edit({layer.name: layer for layer in net.layer}, net)
    path.write_text(text_format.MessageToString(net))


def _edit_caffemodel(path: Path, edit) -> None:
    net = cp.NetParameter()
    net.ParseFromString(path.read_bytes())
    edit({layer.name: layer for layer in net.layer})
    path.write_bytes(net.SerializeToString())


def _convert(capsys, proto: Path, weights: Path, *extra: str) -> tuple[int, str, Path]:
    out = proto.parent / "out.pth"
    capsys.readouterr()
    rc = convert_caffe([str(proto), str(weights), "-o", str(out), "-q", "--arch", "none",
                        *extra])
    return rc, capsys.readouterr().err, out




# ------------------------------------------------------------------------- prototxt


def test_deeply_nested_prototxt_is_refused_before_parsing(net, capsys) -> None:
    # protobuf's text parser recursed into RecursionError at ~500 levels.
    proto, weights = net
    proto.write_text(proto.read_text() + "state { " * 600 + "}" * 600 + "\n")
    line = _refused(_convert(capsys, proto, weights), "net.prototxt", "nested")
    assert "64" in line


def test_oversized_prototxt_is_refused(net, capsys) -> None:
    proto, weights = net
    with open(proto, "a") as handle:
        handle.write(("# padding " + "x" * 1000 + "\n") * 70_000)
    _refused(_convert(capsys, proto, weights), "net.prototxt", "too large")


def test_huge_input_shape_is_refused_with_the_estimate_and_the_limit(net, capsys) -> None:
    # The dry run tried to allocate 43 GB for 1x3x60000x60000 and died in the allocator.
    proto, weights = net
    batch = []

    def edit(layers, netp):
        layers["data"].input_param.shape[0].dim[2:] = [60000, 60000]
        batch.append(layers["data"].input_param.shape[0].dim[0])
        keep = [la for la in netp.layer if la.name in ("data", "conv1", "relu1")]
        del netp.layer[:]
        netp.layer.extend(keep)

    _edit_prototxt(proto, edit)
    line = _refused(_convert(capsys, proto, weights), "net.prototxt", "60000x60000",
                    "--max-memory", "4 GB")
    estimate = float(line.split("about ")[1].split(" GB")[0])
    # 3 x 60000^2 floats in and conv1's 12 x 15000^2 out, per image of the declared batch
    assert 54 * batch[0] <= estimate < 55 * batch[0]


def test_max_memory_flag_sets_the_limit(net, capsys) -> None:
    proto, weights = net
    _refused(_convert(capsys, proto, weights, "--max-memory", "0.0001"), "net.prototxt",
             "over the limit of 0.0001 GB")
    rc, err, out = _convert(capsys, proto, weights, "--max-memory", "0.5")
    assert rc == 0 and out.exists(), err


@pytest.mark.parametrize("field,value,words", [
    ("stride", 0, "pooling_param.stride must be an integer >= 1"),
    ("kernel_size", 0, "pooling_param.kernel_size must be an integer >= 1"),
    ("pad", 3, "pad (3) must be smaller than the kernel (3)"),
])
def test_pooling_fields_are_checked(net, capsys, field: str, value: int, words: str) -> None:
    # stride 0 ended in a ZeroDivisionError in caffe_pooled_size.
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: setattr(layers["pool1"].pooling_param, field,
                                                    value))
    _refused(_convert(capsys, proto, weights), "net.prototxt", "'pool1' (Pooling)", words)


def test_pooling_stride_h_without_stride_w_is_refused(net, capsys) -> None:
    # stride_h alone left stride_w at 0: another division by zero.
    proto, weights = net

    def edit(layers, _):
        p = layers["pool1"].pooling_param
        p.ClearField("stride")
        p.stride_h = 2

    _edit_prototxt(proto, edit)
    _refused(_convert(capsys, proto, weights), "'pool1'", "stride_h and stride_w")


@pytest.mark.parametrize("field,value,words", [
    ("stride", [0], "convolution_param.stride must be an integer >= 1"),
    ("dilation", [0], "convolution_param.dilation must be an integer >= 1"),
])
def test_convolution_fields_are_checked(net, capsys, field, value, words) -> None:
    proto, weights = net

    def edit(layers, _):
        p = layers["conv2"].convolution_param
        p.ClearField(field)
        getattr(p, field).extend(value)

    _edit_prototxt(proto, edit)
    _refused(_convert(capsys, proto, weights), "net.prototxt", "'conv2' (Convolution)", words)


def test_group_must_divide_the_channels(net, capsys) -> None:
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: setattr(layers["conv2"].convolution_param,
                                                    "group", 5))
    _refused(_convert(capsys, proto, weights), "'conv2'", "group")


def test_kernel_larger_than_the_input_is_refused(net, capsys) -> None:
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: layers["data"].input_param.shape[0].dim.__setitem__(
        slice(None), [1, 3, 8, 8]))
    _refused(_convert(capsys, proto, weights), "net.prototxt", "'conv1' (Convolution)",
             "kernel_h 11", "1x3x8x8")


def test_nonpositive_input_dims_are_refused(net, capsys) -> None:
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: layers["data"].input_param.shape[0].dim.__setitem__(
        slice(None), [1, 3, -5, 227]))
    _refused(_convert(capsys, proto, weights), "net.prototxt", "'data' (Input)", "-5")


@pytest.mark.parametrize("layer,new_type,words", [
    ("prob", "Accuracy", "takes exactly 2 bottoms, got 1"),
    ("prob", "SoftmaxWithLoss", "takes exactly 2 bottoms, got 1"),
])
def test_retyped_layer_with_the_wrong_number_of_bottoms(net, capsys, layer, new_type,
                                                        words) -> None:
    # The graph ops indexed a second bottom that is not there (IndexError).
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: setattr(layers[layer], "type", new_type))
    _refused(_convert(capsys, proto, weights), "net.prototxt", f"'{layer}' ({new_type})", words)


def test_relu_without_a_bottom_is_refused(net, capsys) -> None:
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: layers["relu1"].ClearField("bottom"))
    _refused(_convert(capsys, proto, weights), "net.prototxt", "'relu1' (ReLU)",
             "takes exactly 1 bottom, got 0")


def test_eltwise_with_one_bottom_is_refused(net, capsys) -> None:
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: setattr(layers["relu1"], "type", "Eltwise"))
    _refused(_convert(capsys, proto, weights), "'relu1' (Eltwise)", "at least 2 bottoms")


@pytest.mark.parametrize("section,field,value", [
    ("lrn_param", "alpha", math.inf),
    ("lrn_param", "beta", math.nan),
])
def test_nonfinite_float_fields_are_refused(net, capsys, section, field, value) -> None:
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: setattr(getattr(layers["norm1"], section), field,
                                                    value))
    _refused(_convert(capsys, proto, weights), "net.prototxt", "'norm1' (LRN)",
             f"{section}.{field} must be a finite number")


# ------------------------------------------------------------------------- caffemodel


def test_convolution_weight_of_the_wrong_rank_is_refused(net, capsys) -> None:
    # A 1-D weight blob ended in an IndexError in _convolution (blobs[0].shape[-3]).
    proto, weights = net

    def edit(layers):
        shape = layers["conv1"].blobs[0].shape
        n = math.prod(shape.dim)
        del shape.dim[:]
        shape.dim.append(n)

    _edit_caffemodel(weights, edit)
    _refused(_convert(capsys, proto, weights), "net.caffemodel", "'conv1' (Convolution)",
             "blob 0", "(12, 3, 11, 11)")


def test_swapped_convolution_blobs_are_named_as_such(net, capsys) -> None:
    proto, weights = net

    def edit(layers):
        blobs = layers["conv1"].blobs
        w, b = cp.BlobProto(), cp.BlobProto()
        w.CopyFrom(blobs[0])
        b.CopyFrom(blobs[1])
        blobs[0].CopyFrom(b)
        blobs[1].CopyFrom(w)

    _edit_caffemodel(weights, edit)
    _refused(_convert(capsys, proto, weights), "net.caffemodel", "'conv1'", "swapped")


def test_inner_product_weight_that_does_not_fit_the_bottom(net, capsys) -> None:
    proto, weights = net
    # fc8 is 125 x 512: the same values declared 512 x 125
    _edit_caffemodel(weights, lambda layers: layers["fc8"].blobs[0].shape.dim.__setitem__(
        slice(None), [512, 125]))
    _refused(_convert(capsys, proto, weights), "net.caffemodel", "'fc8' (InnerProduct)",
             "blob 0", "(125, 512)")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_weights_are_refused_naming_the_blob(net, capsys, bad) -> None:
    proto, weights = net
    _edit_caffemodel(weights, lambda layers: layers["conv2"].blobs[0].data.__setitem__(7, bad))
    _refused(_convert(capsys, proto, weights), "net.caffemodel", "'conv2' (Convolution)",
             "blob 0", "non-finite", "--allow-nonfinite")


def test_allow_nonfinite_converts_and_says_so(net, capsys) -> None:
    proto, weights = net
    _edit_caffemodel(weights, lambda layers: layers["conv2"].blobs[1].data.__setitem__(
        0, np.nan))
    rc, err, out = _convert(capsys, proto, weights, "--allow-nonfinite")
    assert rc == 0 and out.exists(), err
    assert "--allow-nonfinite" in err and "'conv2'" in err and "blob 1" in err
    assert "Traceback" not in err
    state = torch.load(out, weights_only=True)["state_dict"]
    assert torch.isnan(state["params.conv2/1"][0])


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_caffemodel_gives_one_line(net, capsys, how: str) -> None:
    proto, weights = net
    data = bytearray(weights.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 3]
    else:
        data[40:48] = b"\xff" * 8  # inside conv1's header: tags become garbage
    weights.write_bytes(bytes(data))
    _refused(_convert(capsys, proto, weights), "net.caffemodel")


# ------------------------------------------------------------------------- messages


def test_a_warning_is_not_printed_with_its_source_line_before_the_error(net) -> None:
    # An unknown field is a CaffeFormatWarning; Python's default display adds the source
    # line ("warnings.warn(note, ...)") above the error line.
    proto, weights = net
    text = proto.read_text().replace("    stride: 2\n", "    stride: 0\n    custom_x: 1\n", 1)
    proto.write_text(text)
    out = proto.parent / "out.pth"
    code = "import sys; from porting.converters.caffe import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", code, str(proto), str(weights), "-o", str(out),
                          "-q", "--arch", "none"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert "net.prototxt" in lines[0] and "'pool1'" in lines[0]
    assert not out.exists()


def test_layer_with_blobs_retyped_to_a_parameterless_type(net, capsys) -> None:
    # Found by bench/fuzz.py: fc7 retyped to Dropout kept its two blobs, and --arch auto
    # then looked up the missing 'weight' of "fc7" (KeyError).
    proto, weights = net
    _edit_prototxt(proto, lambda layers, _: setattr(layers["fc7"], "type", "Dropout"))
    out = proto.parent / "out.pth"
    capsys.readouterr()
    rc = convert_caffe([str(proto), str(weights), "-o", str(out), "-q"])  # --arch auto
    _refused((rc, capsys.readouterr().err, out), "net.caffemodel", "'fc7' (Dropout)",
             "2 blobs", "needs 0")
