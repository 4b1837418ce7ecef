"""Fuzz findings of issue #23 (another seed, other mutators): a ``dagnn`` block property that
is present but empty, and a caffemodel blob whose declared shape does not fit its data or a
Caffe blob. Each is one ``error:`` line naming the file, the layer and the property or blob,
exit 2, no output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from matv73 import save_v73

from porting.converters.caffe import main as convert_caffe
from porting.converters.caffe import proto as cp
from porting.converters.matconvnet import main as convert_matconvnet
from porting.converters.matfile import load_mat

from conftest import FIXTURES
from conftest import refused as _refused

RESNET = FIXTURES / "matconvnet/resnet50_narrow/model.mat"  # DagNN struct
CAFFENET = FIXTURES / "caffe" / "caffenet_narrow"


def _dagnn_with(tmp_path: Path, layer_type: str, key: str, value) -> tuple[Path, str]:
    """The ResNet-50 DagNN file with ``block.<key>`` of its first ``layer_type`` layer set
    (written as v7.3, the format the authors' net-epoch files use)."""
    variables = load_mat(RESNET)
    layers = variables["layers"]
    for i in range(layers.shape[1]):
        element = layers[0, i]
        if element["type"] == layer_type:
            element["block"][0, 0][key] = value
            name = str(element["name"])
            break
    path = tmp_path / "edited.mat"
    save_v73(path, variables)
    return path, name


def _convert_mcn(capsys, src: Path) -> tuple[int, str, Path]:
    out = src.parent / "out.pth"
    capsys.readouterr()
    rc = convert_matconvnet([str(src), "-o", str(out), "-q", "--arch", "none"])
    return rc, capsys.readouterr().err, out


def test_empty_batchnorm_epsilon_is_refused(tmp_path, capsys) -> None:
    src, name = _dagnn_with(tmp_path, "dagnn.BatchNorm", "epsilon", np.zeros((0, 0)))
    _refused(_convert_mcn(capsys, src), "edited.mat", f"'{name}' (dagnn.BatchNorm)",
             "block.epsilon", "empty")


def test_any_empty_block_property_is_refused_the_same_way(tmp_path, capsys) -> None:
    src, name = _dagnn_with(tmp_path, "dagnn.Conv", "stride", np.zeros((0, 0)))
    _refused(_convert_mcn(capsys, src), "edited.mat", f"'{name}' (dagnn.Conv)",
             "block.stride", "empty")


def test_properties_matconvnet_leaves_empty_stay_accepted(tmp_path, capsys) -> None:
    """``dagnn.BatchNorm.numChannels`` is ``[]`` in MatConvNet's own class (and in every
    fixture): not a damaged file."""
    src, _ = _dagnn_with(tmp_path, "dagnn.BatchNorm", "numChannels", np.zeros((0, 0)))
    rc, err, out = _convert_mcn(capsys, src)
    assert rc == 0, err
    assert out.exists()


def _caffemodel_with(tmp_path: Path, edit) -> tuple[Path, Path]:
    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    shutil.copy(CAFFENET / "deploy.prototxt", proto)
    net = cp.NetParameter()
    net.ParseFromString((CAFFENET / "weights.caffemodel").read_bytes())
    layer = next(layer for layer in net.layer if len(layer.blobs))
    edit(layer.blobs[0])
    weights.write_bytes(net.SerializeToString())
    return proto, weights, layer.name


def _convert_caffe(capsys, proto: Path, weights: Path) -> tuple[int, str, Path]:
    out = proto.parent / "out.pth"
    capsys.readouterr()
    rc = convert_caffe([str(proto), str(weights), "-o", str(out), "-q", "--arch", "none"])
    return rc, capsys.readouterr().err, out


def _declare(dims: list[int], keep_data: bool):
    def edit(blob) -> None:
        del blob.shape.dim[:]
        blob.shape.dim.extend(dims)
        for legacy in ("num", "channels", "height", "width"):
            blob.ClearField(legacy)
        if not keep_data:
            del blob.data[:]
    return edit


@pytest.mark.parametrize("dims, keep_data, words", [
    # 2^32 x 2^32 wraps to 0 in an int64 product: it used to pass the count check with no
    # data and end in numpy's "cannot reshape array of size 0 into shape (...)"
    ([4294967296, 4294967296], False, "more than a Caffe blob may"),
    ([1 << 20, 1 << 20], False, "more than a Caffe blob may"),
    ([7, 3], True, "values but its shape"),
])
def test_blob_shape_that_does_not_fit_is_one_line(tmp_path, capsys, dims, keep_data,
                                                  words) -> None:
    proto, weights, layer = _caffemodel_with(tmp_path, _declare(dims, keep_data))
    _refused(_convert_caffe(capsys, proto, weights), "net.caffemodel", f"'{layer}'",
             "blob 0", words)
