"""Read Caffe prototxt/caffemodel files into a framework-neutral description of the net.

Parsing is done by the protobuf runtime with the schema in ``converters.caffe_proto``.
On top of it this module does what Caffe itself does when it loads a net, so that the
converter sees the layers Caffe would run:

* ``upgrade_v1``: the legacy formats Caffe still accepts (V1 ``layers`` with enum types,
  ``input:``/``input_dim:``/``input_shape`` headers) become V2 ``layer`` records, as in
  Caffe's ``UpgradeNetAsNeeded``;
* ``load_net``: layers are filtered by ``include``/``exclude`` rules for a phase
  (``Net::FilterNet``), and weights are attached by layer name
  (``Net::CopyTrainedLayersFrom``), with blobs as float32 numpy arrays.

Every problem with the input files is reported as one ``CaffeFormatError`` line naming
the file and the layer or field.
"""

from __future__ import annotations

import mmap
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import BinaryIO

import numpy as np
from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from porting.converters import caffe_proto as cp

__all__ = [
    "CaffeFormatError",
    "CaffeFormatWarning",
    "CaffeLayer",
    "CaffeNet",
    "blob_to_array",
    "load_net",
    "phase_layers",
    "read_caffemodel",
    "read_mean_binaryproto",
    "read_prototxt",
    "upgrade_v1",
]

PathLike = str | os.PathLike[str]

PHASES = ("TRAIN", "TEST")
_PHASE = cp.POOL.FindEnumTypeByName("caffe.Phase")

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

# Layer types that never own blobs; a caffemodel giving them some is corrupt.
_PARAMETERLESS = frozenset(
    """
    AbsVal Accuracy ArgMax BNLL Concat ContrastiveLoss Crop Data Dropout DummyData ELU Eltwise
    Euclidean EuclideanLoss Exp Flatten HDF5Data HDF5Output HingeLoss ImageData InfogainLoss Input
    LRN Log MVN MemoryData MultinomialLogisticLoss Pooling Power ReLU ReidData Reduction
    PairEuclidean Reshape Sigmoid SigmoidCrossEntropyLoss Silence Slice Softmax
    SoftmaxWithLoss Split
    TanH Threshold Tile WindowData
    """.split()
)


class CaffeFormatError(ValueError):
    """A Caffe file that cannot be read or makes no sense; the message names file and spot."""


class CaffeFormatWarning(UserWarning):
    """Something Caffe would accept but that the reader cannot interpret (e.g. a custom field)."""


# --------------------------------------------------------------------------- reading


def read_prototxt(path: PathLike) -> Message:
    """Parse a text prototxt into a ``caffe.NetParameter`` (no upgrade, no filtering).

    Unknown field names (custom layers' parameters) do not fail the parse: they are
    skipped and each one is reported as a ``CaffeFormatWarning``.
    """
    net, notes = _parse_prototxt(path)
    for note in notes:
        warnings.warn(note, CaffeFormatWarning, stacklevel=2)
    return net


def read_caffemodel(path: PathLike) -> Message:
    """Parse a binary caffemodel into a ``caffe.NetParameter`` (V1 or V2, not upgraded).

    Fields the schema does not know are kept as unknown fields.
    """
    name = os.fspath(path)
    net = cp.NetParameter()
    with open(name, "rb") as handle, _mapped(handle) as data:
        try:
            # The runtime copies what it keeps, so the mapping can go once this returns.
            net.ParseFromString(data)
        except DecodeError as exc:
            hint = " (it looks like a text prototxt)" if _looks_like_text(bytes(data[:256])) else ""
            raise CaffeFormatError(
                f"{name}: not a valid binary Caffe NetParameter{hint}: {exc}"
            ) from None
    try:
        names = [layer.name for layer in net.layer] + [layer.name for layer in net.layers]
    except UnicodeDecodeError:
        raise CaffeFormatError(f"{name}: corrupt caffemodel (layer name is not UTF-8)") from None
    if not names:
        raise CaffeFormatError(f"{name}: caffemodel contains no layers")
    return net


@contextmanager
def _mapped(handle: BinaryIO) -> Iterator[memoryview | bytes]:
    """The file's bytes, memory-mapped when it can be (a 100 MB caffemodel then costs no
    copy and no extra memory), else read."""
    try:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # empty file, pipe, ...
        yield handle.read()
        return
    view = memoryview(mapping)
    try:
        yield view
    finally:
        view.release()
        mapping.close()


def read_mean_binaryproto(path: PathLike) -> np.ndarray:
    """Read a mean image (``BlobProto``, e.g. ``imagenet_mean.binaryproto``) as (C, H, W) float32.

    The channel order is whatever the file holds (BVLC means are BGR).
    """
    name = os.fspath(path)
    with open(name, "rb") as handle:
        data = handle.read()
    blob = cp.BlobProto()
    try:
        blob.ParseFromString(data)
    except DecodeError as exc:
        raise CaffeFormatError(f"{name}: not a valid binary Caffe BlobProto: {exc}") from None
    array, _ = blob_to_array(blob, f"{name}: mean blob")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.size == 0:
        raise CaffeFormatError(
            f"{name}: mean blob has shape {array.shape}, expected (1, C, H, W) or (C, H, W)"
        )
    return array


def blob_shape(blob: Message, where: str = "blob") -> tuple[tuple[int, ...], bool]:
    """A ``BlobProto``'s shape and whether it is legacy 4-D, its value count checked.

    As in Caffe's ``Blob::FromProto``, the deprecated num/channels/height/width fields
    win over ``shape`` when any of them is present, and ``double_data`` wins over ``data``.
    """
    legacy = any(blob.HasField(dim) for dim in ("num", "channels", "height", "width"))
    if legacy:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(int(d) for d in blob.shape.dim)
    if any(d < 0 for d in shape):
        raise CaffeFormatError(f"{where}: negative dimension in shape {shape}")
    stored = len(blob.double_data) or len(blob.data)
    count = int(np.prod(shape, dtype=np.int64))
    if stored != count:
        raise CaffeFormatError(
            f"{where}: has {stored} values but its shape {shape} needs {count}"
        )
    return shape, legacy


def blob_to_array(
    blob: Message, where: str = "blob", out: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """Convert a ``BlobProto`` to a float32 array (written into ``out``, a flat float32 array
    of the right size, when given) and say whether its shape is legacy 4-D."""
    shape, legacy = blob_shape(blob, where)
    values = blob.double_data if len(blob.double_data) else blob.data
    if out is None:
        out = np.asarray(values, dtype=np.float32)
    elif len(values):
        out[...] = values
    return out.reshape(shape), legacy


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


# --------------------------------------------------------------------------- the net


@dataclass(frozen=True, eq=False)
class CaffeLayer:
    """One layer as Caffe would run it, with its weights.

    ``params`` maps each *_param field that is set (``"convolution_param"``, ...) to its
    protobuf message; ``proto`` is the whole ``LayerParameter`` (blobs removed) for
    reading defaults of unset fields. ``blobs`` are float32 arrays in Caffe order, with
    the file's shape: ``blob_legacy[i]`` marks blobs stored with the deprecated 4-D
    num/channels/height/width dims (V1 models: an InnerProduct weight is 1x1xOxI),
    which Caffe matches against the layer's shape with ``blob_matches``.
    ``param_names[i]`` is ``ParamSpec.name`` of blob i (``None`` when unnamed); layers
    sharing a name share that parameter. ``loss_weight`` is the raw field (empty: Caffe
    uses 1 for the first top of ``*Loss`` layers, 0 otherwise).
    """

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Mapping[str, Message]
    proto: Message
    blobs: tuple[np.ndarray, ...] = ()
    blob_legacy: tuple[bool, ...] = ()
    param_names: tuple[str | None, ...] = ()
    include: tuple[Message, ...] = ()
    exclude: tuple[Message, ...] = ()
    loss_weight: tuple[float, ...] = ()

    def blob_matches(self, index: int, shape: Sequence[int]) -> bool:
        """Caffe's ``Blob::ShapeEquals``: does blob ``index`` fit a blob of ``shape``?

        Legacy 4-D blobs match any shape of at most 4 axes that equals them once padded
        with leading 1s (bias 1x1x1xO fits (O,)).
        """
        blob, want = self.blobs[index], tuple(int(d) for d in shape)
        if self.blob_legacy[index]:
            return len(want) <= 4 and (1,) * (4 - len(want)) + want == blob.shape
        return blob.shape == want


@dataclass(frozen=True, eq=False)
class CaffeNet:
    """A Caffe net for one phase: its inputs, its layers in order, and load diagnostics.

    ``inputs`` maps each ``Input`` layer top to its shape (``None`` when the prototxt
    leaves it to be set at run time); the Input layers themselves stay in ``layers``.
    ``param_owners`` maps each ``ParamSpec`` name to the (layer, blob index) that owns
    it (the first layer using the name). ``unused_weights`` lists caffemodel layers with
    blobs that match no layer of this phase; ``warnings`` repeats the warnings issued.
    """

    name: str
    phase: str
    inputs: Mapping[str, tuple[int, ...] | None]
    layers: tuple[CaffeLayer, ...]
    param_owners: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    unused_weights: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    definition: Message | None = field(default=None, repr=False, compare=False)

    def layer(self, name: str) -> CaffeLayer:
        """The layer called ``name`` (KeyError if absent)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def load_net(
    prototxt: PathLike,
    caffemodel: PathLike | None = None,
    phase: str = "TEST",
    *,
    level: int = 0,
    stages: Iterable[str] = (),
) -> CaffeNet:
    """Load a prototxt (V1 or V2) and optionally its caffemodel (V1 or V2) for ``phase``.

    Layers are kept or dropped by their include/exclude rules against the state
    (``phase``, ``level``, the prototxt's ``state.stage`` plus ``stages``), as in
    ``Net::FilterNet``. Weights are matched by layer name; a layer that needs weights
    but gets none is an error unless all its blobs are shared (by ``ParamSpec`` name)
    with a layer that has them. Blob shapes are not checked against the layer's
    hyperparameters here, only their number where the layer type fixes it.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    proto_name = os.fspath(prototxt)
    raw, notes = _parse_prototxt(prototxt)
    for note in notes:
        warnings.warn(note, CaffeFormatWarning, stacklevel=2)
    net = upgrade_v1(raw, proto_name)
    if not len(net.layer):
        raise CaffeFormatError(f"{proto_name}: prototxt defines no layers")
    kept = phase_layers(net, phase, level=level, stages=stages, where=proto_name)
    _check_layers(kept, proto_name, phase)

    blobs: dict[str, list[tuple[np.ndarray, bool]]] = {}
    unused: tuple[str, ...] = ()
    if caffemodel is not None:
        weights_name = os.fspath(caffemodel)
        source = upgrade_v1(read_caffemodel(caffemodel), weights_name)
        blobs, unused, order = _match_weights(kept, source, weights_name, proto_name)
        notes += _tie_shared(kept, blobs, order, weights_name)

    layers = tuple(_make_layer(layer, blobs.get(layer.name, [])) for layer in kept)
    owners: dict[str, tuple[str, int]] = {}
    for layer in layers:
        for i, pname in enumerate(layer.param_names):
            if pname is not None:
                owners.setdefault(pname, (layer.name, i))
    return CaffeNet(
        name=net.name,
        phase=phase,
        inputs=MappingProxyType(_inputs(kept, proto_name)),
        layers=layers,
        param_owners=MappingProxyType(owners),
        unused_weights=unused,
        warnings=tuple(notes),
        definition=net,
    )


def phase_layers(
    net: Message, phase: str, *, level: int = 0, stages: Iterable[str] = (),
    where: str = "<NetParameter>",
) -> list[Message]:
    """The layers of an upgraded ``NetParameter`` that Caffe's ``FilterNet`` keeps."""
    state_stages = (*net.state.stage, *stages)
    return [layer for layer in net.layer if _included(layer, phase, level, state_stages, where)]


def _included(layer: Message, phase: str, level: int, stages: Sequence[str], where: str) -> bool:
    """Caffe's FilterNet decision for one layer."""
    if len(layer.include) and len(layer.exclude):
        raise CaffeFormatError(
            f"{where}: layer '{layer.name}' has both include and exclude rules; Caffe refuses this"
        )
    if len(layer.include):
        return any(_meets(rule, phase, level, stages) for rule in layer.include)
    return not any(_meets(rule, phase, level, stages) for rule in layer.exclude)


def _meets(rule: Message, phase: str, level: int, stages: Sequence[str]) -> bool:
    """Caffe's StateMeetsRule: the rule holds when every condition it sets holds."""
    if rule.HasField("phase") and rule.phase != _PHASE.values_by_name[phase].number:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def _check_layers(layers: Sequence[Message], where: str, phase: str) -> None:
    seen: set[str] = set()
    for index, layer in enumerate(layers):
        if not layer.type:
            raise CaffeFormatError(f"{where}: layer #{index} '{layer.name}' has no type")
        if layer.name in seen:
            raise CaffeFormatError(
                f"{where}: two layers are named '{layer.name}' in phase {phase}; "
                "weights are matched by name"
            )
        seen.add(layer.name)
        expected = _expected_blob_count(layer)
        if expected is not None and len(layer.param) > expected:
            raise CaffeFormatError(
                f"{where}: layer '{layer.name}' ({layer.type}) has {len(layer.param)} "
                f"param specs but only {expected} blobs"
            )


def _expected_blob_count(layer: Message) -> int | None:
    """How many blobs Caffe creates for this layer, where the type alone decides it."""
    kind = layer.type
    if kind in ("Convolution", "Deconvolution"):
        return 1 + int(layer.convolution_param.bias_term)
    if kind == "InnerProduct":
        return 1 + int(layer.inner_product_param.bias_term)
    if kind == "BatchNorm":
        return 3  # mean, variance, moving-average scale factor
    if kind == "Scale":  # with a second bottom the scale is an input, not a blob
        return int(len(layer.bottom) == 1) + int(layer.scale_param.bias_term)
    if kind == "Bias":
        return int(len(layer.bottom) == 1)
    if kind == "PReLU":
        return 1
    if kind in _PARAMETERLESS:
        return 0
    return None


def _match_weights(
    layers: Sequence[Message], source: Message, weights_name: str, proto_name: str
) -> tuple[dict[str, list[tuple[np.ndarray, bool]]], tuple[str, ...], dict[str, int]]:
    """Blobs per prototxt layer from the caffemodel, caffemodel layers left over, and
    each matched layer's position in the caffemodel (Caffe copies in that order)."""
    by_name: dict[str, Message] = {}
    order: dict[str, int] = {}
    for index, src in enumerate(source.layer):
        if not len(src.blobs):
            continue  # train-time data/loss layers saved without weights
        if src.name in by_name:
            raise CaffeFormatError(f"{weights_name}: two layers named '{src.name}' carry weights")
        by_name[src.name] = src
        order[src.name] = index
    wanted = {layer.name for layer in layers}
    owned = {
        spec.name for layer in layers if layer.name in by_name for spec in layer.param if spec.name
    }
    result: dict[str, list[tuple[np.ndarray, bool]]] = {}
    todo: list[tuple[str, str, Message]] = []
    for layer in layers:
        expected = _expected_blob_count(layer)
        src = by_name.get(layer.name)
        if src is None:
            shared = (
                expected is not None
                and len(layer.param) >= expected
                and all(layer.param[i].name in owned for i in range(expected))
            )
            if expected and not shared:
                raise CaffeFormatError(
                    f"{weights_name}: no weights for layer '{layer.name}' ({layer.type}) "
                    f"of {proto_name}"
                )
            continue
        where = f"{weights_name}: layer '{layer.name}' ({layer.type})"
        if expected is not None and len(src.blobs) != expected:
            raise CaffeFormatError(
                f"{where}: has {len(src.blobs)} blobs, the layer needs {expected}"
            )
        todo.append((layer.name, where, src))
    # All blobs go into ONE buffer, sliced per blob: a single large allocation fills much
    # faster than hundreds of small ones, and each slice still becomes its own tensor.
    sizes = [[int(np.prod(blob_shape(blob, f"{where} blob {i}")[0], dtype=np.int64))
              for i, blob in enumerate(src.blobs)] for _, where, src in todo]
    buffer = np.empty(sum(map(sum, sizes)), dtype=np.float32)
    start = 0
    for (name, where, src), counts in zip(todo, sizes, strict=True):
        result[name] = []
        for i, (blob, n) in enumerate(zip(src.blobs, counts, strict=True)):
            result[name].append(
                blob_to_array(blob, f"{where} blob {i}", buffer[start:start + n]))
            start += n
    unused = tuple(name for name in by_name if name not in wanted)
    return result, unused, order


def _tie_shared(
    layers: Sequence[Message],
    blobs: dict[str, list[tuple[np.ndarray, bool]]],
    order: Mapping[str, int],
    weights_name: str,
) -> list[str]:
    """Give all users of a named parameter the same values, as Caffe's shared blobs have.

    Caffe copies caffemodel layers in file order into blobs that share memory, so the
    last copy wins; a disagreement between copies is reported as a warning. Layers
    absent from the caffemodel (all of whose blobs are shared) get the shared values.
    """
    users: dict[str, list[tuple[str, int]]] = {}
    for layer in layers:
        for i, spec in enumerate(layer.param):
            if spec.name:
                users.setdefault(spec.name, []).append((layer.name, i))
    notes: list[str] = []
    borrowed: dict[str, dict[int, tuple[np.ndarray, bool]]] = {}
    for pname, refs in users.items():
        for name, i in refs:
            if name in blobs and i >= len(blobs[name]):
                raise CaffeFormatError(
                    f"{weights_name}: layer '{name}' has {len(blobs[name])} blobs but "
                    f"param spec #{i} ('{pname}')"
                )
        loaded = [(name, i) for name, i in refs if name in blobs]
        if not loaded:
            continue
        last_name, last_i = max(loaded, key=lambda ref: order[ref[0]])
        values, legacy = blobs[last_name][last_i]
        for name, i in refs:
            if name not in blobs:
                borrowed.setdefault(name, {})[i] = (values, legacy)
                continue
            mine, mine_legacy = blobs[name][i]
            if mine.size != values.size:
                raise CaffeFormatError(
                    f"{weights_name}: shared param '{pname}' has {mine.size} values in "
                    f"layer '{name}' but {values.size} in '{last_name}'"
                )
            if not np.array_equal(mine.ravel(), values.ravel()):
                notes.append(
                    f"{weights_name}: shared param '{pname}' differs between layers "
                    f"'{name}' and '{last_name}'; using '{last_name}' (loaded last, as Caffe)"
                )
            blobs[name][i] = (values.reshape(mine.shape), mine_legacy)
    for name, slots in borrowed.items():
        count = 0
        while count in slots:  # only a leading run of shared blobs can be borrowed
            count += 1
        blobs[name] = [slots[i] for i in range(count)]
    for note in notes:
        warnings.warn(note, CaffeFormatWarning, stacklevel=3)
    return notes


def _make_layer(layer: Message, blobs: Sequence[tuple[np.ndarray, bool]]) -> CaffeLayer:
    proto = cp.LayerParameter()
    proto.CopyFrom(layer)
    del proto.blobs[:]
    params = {
        fd.name: value
        for fd, value in proto.ListFields()
        if fd.name.endswith("_param") and fd.type == FieldDescriptor.TYPE_MESSAGE
    }
    n_names = max(len(proto.param), len(blobs))
    names = tuple(
        (proto.param[i].name or None) if i < len(proto.param) else None for i in range(n_names)
    )
    return CaffeLayer(
        name=proto.name,
        type=proto.type,
        bottoms=tuple(proto.bottom),
        tops=tuple(proto.top),
        params=MappingProxyType(params),
        proto=proto,
        blobs=tuple(array for array, _ in blobs),
        blob_legacy=tuple(legacy for _, legacy in blobs),
        param_names=names,
        include=tuple(proto.include),
        exclude=tuple(proto.exclude),
        loss_weight=tuple(proto.loss_weight),
    )


def _inputs(layers: Sequence[Message], where: str) -> dict[str, tuple[int, ...] | None]:
    inputs: dict[str, tuple[int, ...] | None] = {}
    for layer in layers:
        if layer.type != "Input":
            continue
        shapes = [tuple(int(d) for d in shape.dim) for shape in layer.input_param.shape]
        tops = list(layer.top)
        if len(shapes) not in (0, 1, len(tops)):
            raise CaffeFormatError(
                f"{where}: Input layer '{layer.name}' has {len(tops)} tops but "
                f"{len(shapes)} shapes (need 0, 1 or one per top)"
            )
        for i, top in enumerate(tops):
            inputs[top] = None if not shapes else shapes[i if len(shapes) > 1 else 0]
    return inputs


# --------------------------------------------------------------------------- prototxt text


def _parse_prototxt(path: PathLike) -> tuple[Message, list[str]]:
    """Parse strictly; if only unknown field names stand in the way, parse again skipping
    them and return one note per skipped field."""
    name = os.fspath(path)
    with open(name, "rb") as handle:
        data = handle.read(MAX_PROTOTXT_BYTES + 1)
    if len(data) > MAX_PROTOTXT_BYTES:
        raise CaffeFormatError(
            f"{name}: larger than {MAX_PROTOTXT_BYTES // 2**20} MB, too large for a prototxt"
        )
    if b"\x00" in data:
        raise CaffeFormatError(f"{name}: not a text prototxt (binary data; a .caffemodel?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaffeFormatError(
            f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    _check_nesting(name, text)
    net = cp.NetParameter()
    try:
        text_format.Parse(text, net, descriptor_pool=cp.POOL)
        return net, []
    except text_format.ParseError as exc:
        if "has no field named" not in str(exc):
            raise _text_error(name, exc) from None
    net = cp.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True, descriptor_pool=cp.POOL)
    except text_format.ParseError as exc:
        raise _text_error(name, exc) from None
    notes = [
        f"{name}:{line}:{column}: unknown field '{field_name}' in {message} skipped "
        "(custom layer parameter?)"
        for message, field_name, line, column in _unknown_fields(text, net.DESCRIPTOR)
    ]
    return net, notes


# Real nets nest messages 4-5 deep (layer { convolution_param { weight_filler {...} } });
# protobuf's text parser recurses once per level and hits Python's limit near 500.
MAX_PROTOTXT_DEPTH = 64
MAX_PROTOTXT_BYTES = 64 * 2**20  # the largest published deploy prototxts are < 1 MB

# Strings and comments, whose braces do not count, then the braces themselves.
_SKIPPED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*')
_BRACES = re.compile(r"[{}<>]")


def _check_nesting(name: str, text: str) -> None:
    """Refuse text nested deeper than MAX_PROTOTXT_DEPTH before the parser recurses."""
    blanked = _SKIPPED.sub(lambda m: " " * len(m.group()), text)  # offsets stay valid
    depth = 0
    for match in _BRACES.finditer(blanked):
        depth += 1 if match.group() in "{<" else -1
        if depth > MAX_PROTOTXT_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise CaffeFormatError(
                f"{name}:{line}: messages nested more than {MAX_PROTOTXT_DEPTH} deep "
                "(real nets nest about 5)"
            )


def _text_error(name: str, exc: text_format.ParseError) -> CaffeFormatError:
    message = str(exc)
    if exc.GetLine() is not None:
        message = message.split(" : ", 1)[-1]
        return CaffeFormatError(f"{name}:{exc.GetLine()}:{exc.GetColumn()}: {message}")
    return CaffeFormatError(f"{name}: {message}")


def _unknown_fields(text: str, root: Descriptor) -> list[tuple[str, str, int, int]]:
    """Walk the (already parseable) text and list (message, field, line, column) of every
    field name the schema does not know. Contents of unknown fields are not inspected."""
    tokens = text_format.Tokenizer(text.splitlines())
    stack: list[Descriptor | None] = [root]
    found: list[tuple[str, str, int, int]] = []
    try:
        while not tokens.AtEnd():
            if tokens.TryConsume("}") or tokens.TryConsume(">"):
                stack.pop()
                continue
            name = tokens.ConsumeIdentifierOrNumber()
            where = tokens.ParseErrorPreviousToken("")
            message = stack[-1]
            fd = message.fields_by_name.get(name) if message is not None else None
            if message is not None and fd is None:
                found.append((message.full_name, name, where.GetLine(), where.GetColumn()))
            tokens.TryConsume(":")
            if tokens.TryConsume("{") or tokens.TryConsume("<"):
                stack.append(fd.message_type if fd is not None else None)
            elif tokens.TryConsume("["):
                depth = 1
                while depth:
                    if tokens.TryConsume("[") or tokens.TryConsume("{"):
                        depth += 1
                    elif tokens.TryConsume("]") or tokens.TryConsume("}"):
                        depth -= 1
                    else:
                        tokens.NextToken()
            else:
                _skip_value(tokens)
            if not tokens.TryConsume(","):
                tokens.TryConsume(";")
    except text_format.ParseError:
        pass  # the parser proper accepted the text; report what was found so far
    return found


def _skip_value(tokens: text_format.Tokenizer) -> None:
    if tokens.TryConsumeByteString():
        while tokens.TryConsumeByteString():
            pass
        return
    if not (
        tokens.TryConsumeIdentifier() or tokens.TryConsumeInteger() or tokens.TryConsumeFloat()
    ):
        raise tokens.ParseError("expected a value")


def _looks_like_text(data: bytes) -> bool:
    head = data[:256].lstrip()
    return bool(head) and all(32 <= c < 127 or c in b"\t\r\n" for c in head)
