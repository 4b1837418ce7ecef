"""Read Caffe prototxt/caffemodel files into a framework-neutral description of the net.

Parsing is done by the protobuf runtime with the schema in ``porting.converters.caffe.proto``.
On top of it this module does what Caffe itself does when it loads a net, so that the
converter sees the layers Caffe would run:

* ``upgrade_v1`` (:mod:`~porting.converters.caffe.upgrade`): the legacy formats Caffe still
  accepts (V1 ``layers`` with enum types, ``input:``/``input_dim:``/``input_shape`` headers)
  become V2 ``layer`` records, as in Caffe's ``UpgradeNetAsNeeded``;
* ``load_net``: layers are filtered by ``include``/``exclude`` rules for a phase
  (``Net::FilterNet``), and weights are attached by layer name
  (``Net::CopyTrainedLayersFrom``), with blobs as float32 numpy arrays, their number held to
  what the unit of the layer's type declares (:mod:`~porting.converters.caffe.registry`).

Every problem with the input files is reported as one ``CaffeFormatError`` line naming
the file and the layer or field; the files themselves are read by
:mod:`~porting.converters.caffe.files`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from . import proto as cp
from .files import (
    CaffeFormatError,
    CaffeFormatWarning,
    PathLike,
    blob_shape,
    blob_to_array,
    parse_prototxt,
    read_caffemodel,
    read_mean_binaryproto,
    read_prototxt,
)
from .layers import UNITS
from .net import CaffeLayer, CaffeNet
from .registry import expected_blobs
from .upgrade import upgrade_v1

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

PHASES = ("TRAIN", "TEST")
_PHASE = cp.POOL.FindEnumTypeByName("caffe.Phase")


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
    raw, notes = parse_prototxt(prototxt)
    unknown = tuple(notes)
    for note in notes:
        warnings.warn(note, CaffeFormatWarning, stacklevel=2)
    net = upgrade_v1(raw, proto_name)
    if not len(net.layer):
        raise CaffeFormatError(f"{proto_name}: prototxt defines no layers")
    kept = phase_layers(net, phase, level=level, stages=stages, where=proto_name)
    duplicates = _check_layers(kept, proto_name, phase)
    if caffemodel is None:
        _check_duplicates(kept, duplicates, cp.NetParameter(), proto_name, phase)

    blobs: dict[str, list[tuple[np.ndarray, bool]]] = {}
    unused: tuple[str, ...] = ()
    if caffemodel is not None:
        weights_name = os.fspath(caffemodel)
        source = upgrade_v1(read_caffemodel(caffemodel), weights_name)
        _check_duplicates(kept, duplicates, source, proto_name, phase)
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
        unknown_fields=unknown,
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


def _check_layers(layers: Sequence[Message], where: str, phase: str) -> set[str]:
    """Types and param counts; returns the names more than one layer has (BVLC's ``Net``
    accepts those; :func:`_check_duplicates` refuses them where weights would be ambiguous)."""
    seen: set[str] = set()
    duplicates: set[str] = set()
    for index, layer in enumerate(layers):
        if not layer.type:
            raise CaffeFormatError(f"{where}: layer #{index} '{layer.name}' has no type")
        if layer.name in seen:
            duplicates.add(layer.name)
        seen.add(layer.name)
        expected = _expected_blob_count(layer)
        if expected is not None and len(layer.param) > expected:
            raise CaffeFormatError(
                f"{where}: layer '{layer.name}' ({layer.type}) has {len(layer.param)} "
                f"param specs but only {expected} blobs"
            )
    return duplicates


def _check_duplicates(layers: Sequence[Message], duplicates: set[str], source: Message,
                      where: str, phase: str) -> None:
    """A name several layers share is refused only where weights are matched by it: when
    the caffemodel has blobs under that name or one of those layers takes blobs (Caffe's
    ``CopyTrainedLayersFrom`` would copy them all into the first layer of that name)."""
    if not duplicates:
        return
    weighted = {src.name for src in source.layer if len(src.blobs)}
    for name in sorted(duplicates):
        same = [layer for layer in layers if layer.name == name]
        if name in weighted or any(_expected_blob_count(layer) for layer in same):
            raise CaffeFormatError(
                f"{where}: {len(same)} layers are named '{name}' in phase {phase} "
                f"({', '.join(layer.type for layer in same)}) and weights are matched by "
                "layer name: which one the caffemodel's blobs belong to is ambiguous"
            )


def _expected_blob_count(layer: Message) -> int | None:
    """How many blobs Caffe creates for this layer, where its type (and fields) decide it:
    the unit of its type says (``Unit.blob_count``)."""
    return expected_blobs(UNITS, layer)


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


