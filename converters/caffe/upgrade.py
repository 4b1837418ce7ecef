"""The legacy formats Caffe still accepts, upgraded as Caffe's ``UpgradeNetAsNeeded`` does: V1
``layers`` with enum types and the ``input:``/``input_dim:``/``input_shape`` headers become V2
``layer`` records."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from google.protobuf.message import Message

from . import proto as cp
from .files import CaffeFormatError

# V1LayerParameter.LayerType -> V2 type string (Caffe's UpgradeV1LayerType).
V1_TYPE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "NONE": "",
        "ABSVAL": "AbsVal",
        "ACCURACY": "Accuracy",
        "ARGMAX": "ArgMax",
        "BNLL": "BNLL",
        "CONCAT": "Concat",
        "CONTRASTIVE_LOSS": "ContrastiveLoss",
        "CONVOLUTION": "Convolution",
        "DATA": "Data",
        "DECONVOLUTION": "Deconvolution",
        "DROPOUT": "Dropout",
        "DUMMY_DATA": "DummyData",
        "EUCLIDEAN_LOSS": "EuclideanLoss",
        "ELTWISE": "Eltwise",
        "EXP": "Exp",
        "FLATTEN": "Flatten",
        "HDF5_DATA": "HDF5Data",
        "HDF5_OUTPUT": "HDF5Output",
        "HINGE_LOSS": "HingeLoss",
        "IM2COL": "Im2col",
        "IMAGE_DATA": "ImageData",
        "INFOGAIN_LOSS": "InfogainLoss",
        "INNER_PRODUCT": "InnerProduct",
        "LRN": "LRN",
        "MEMORY_DATA": "MemoryData",
        "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
        "MVN": "MVN",
        "POOLING": "Pooling",
        "POWER": "Power",
        "RELU": "ReLU",
        "SIGMOID": "Sigmoid",
        "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
        "SILENCE": "Silence",
        "SOFTMAX": "Softmax",
        "SOFTMAX_LOSS": "SoftmaxWithLoss",
        "SPLIT": "Split",
        "SLICE": "Slice",
        "TANH": "TanH",
        "WINDOW_DATA": "WindowData",
        "THRESHOLD": "Threshold",
    }
)



# --------------------------------------------------------------------------- upgrade


def upgrade_v1(net: Message, source: str = "<NetParameter>") -> Message:
    """Return a copy of ``net`` in the current format, as Caffe's ``UpgradeNetAsNeeded`` does.

    V1 ``layers`` become ``layer`` records (enum type -> type string, per-type params
    moved, ``blobs_lr``/``weight_decay``/``param``/``blob_share_mode`` -> ``ParamSpec``;
    deprecated data-layer transformation fields -> ``transform_param``), and legacy
    ``input``/``input_dim``/``input_shape`` headers become an ``Input`` layer named
    "input" placed first. Blobs are copied unchanged, so V1 blobs keep their 4-D dims.
    ``source`` names the file in error messages. A net already in the current format is
    returned as is (no copy: a caffemodel's blobs are most of its size).
    """
    if not len(net.layers) and not len(net.input):
        return net
    out = cp.NetParameter()
    out.CopyFrom(net)
    if len(net.layers):
        if len(net.layer):
            raise CaffeFormatError(
                f"{source}: has both V1 'layers' and V2 'layer' entries; Caffe refuses this"
            )
        del out.layers[:]
        for index, v1 in enumerate(net.layers):
            _upgrade_v1_layer(v1, out.layer.add(), f"{source}: V1 layer #{index} '{v1.name}'")
    if len(net.input):
        _upgrade_input(net, out, source)
    return out


def _upgrade_v1_layer(v1: Message, layer: Message, where: str) -> None:
    if v1.HasField("layer"):
        raise CaffeFormatError(f"{where}: pre-V1 (V0) layer format is not supported")
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    for rule in v1.include:
        layer.include.add().CopyFrom(rule)
    for rule in v1.exclude:
        layer.exclude.add().CopyFrom(rule)
    type_name = cp.V1LayerParameter.LayerType.Name(v1.type)
    if v1.HasField("type"):
        layer.type = V1_TYPE_NAMES[type_name]
    for blob in v1.blobs:
        layer.blobs.add().CopyFrom(blob)

    def spec(i: int) -> Message:
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, param_name in enumerate(v1.param):
        spec(i).name = param_name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = mode  # V1 and ParamSpec DimCheckMode share their numbers
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for fd, value in v1.ListFields():
        if fd.name.endswith("_param"):
            getattr(layer, fd.name).CopyFrom(value)
    # Old data layers carried scale/mean_file/crop_size/mirror in their own params.
    data_param = {"DATA": "data_param", "IMAGE_DATA": "image_data_param"}.get(type_name)
    if data_param and layer.HasField(data_param):
        old = getattr(layer, data_param)
        for name in ("scale", "mean_file", "crop_size", "mirror"):
            if old.HasField(name):
                setattr(layer.transform_param, name, getattr(old, name))
                old.ClearField(name)


def _upgrade_input(net: Message, out: Message, source: str) -> None:
    n_inputs = len(net.input)
    has_shape, has_dim = len(net.input_shape) > 0, len(net.input_dim) > 0
    del out.input[:]
    del out.input_shape[:]
    del out.input_dim[:]
    if not (has_shape or has_dim):
        return  # a bare 'input:' (old caffemodels) carries nothing; Caffe drops it
    if has_shape and len(net.input_shape) != n_inputs:
        raise CaffeFormatError(
            f"{source}: {n_inputs} 'input' names but {len(net.input_shape)} 'input_shape'"
        )
    if not has_shape and len(net.input_dim) != 4 * n_inputs:
        raise CaffeFormatError(
            f"{source}: {n_inputs} 'input' names need {4 * n_inputs} 'input_dim' values, "
            f"got {len(net.input_dim)}"
        )
    layer = cp.LayerParameter(name="input", type="Input", top=list(net.input))
    for i in range(n_inputs):
        shape = layer.input_param.shape.add()
        if has_shape:
            shape.CopyFrom(net.input_shape[i])
        else:
            shape.dim.extend(net.input_dim[4 * i : 4 * i + 4])
    layers = [layer, *out.layer]
    del out.layer[:]
    out.layer.extend(layers)


