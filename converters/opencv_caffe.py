"""``compare CHECKPOINT --opencv``: the checkpoint's own Caffe source, run by OpenCV's dnn module.

OpenCV (``opencv-python-headless``, a dependency) has its own Caffe importer and kernels, so
it is a runtime independent of this library for users who cannot build Caffe. The prototxt
and caffemodel are the paths ``convert-caffe`` recorded, checked against their recorded
SHA-256 (``--prototxt``/``--caffemodel`` override both). Both sides run on the same input: a
seeded one of the checkpoint's input size (the dumps' recipe, :func:`comparison.seeded_array`)
or ``--input`` images in the checkpoint's preprocessing; label inputs are zeros. A ``--rgb``
checkpoint gets the channels reversed on the OpenCV side, where the caffemodel expects BGR.

OpenCV's quirks, handled here:

* fusion (a ReLU or BatchNorm folded into the convolution before it) hides their outputs:
  it is disabled, and so is Winograd convolution (a faster, less exact 3x3 arithmetic);
* OpenCV names a value by the LAYER that made it, where Caffe names blobs and overwrites
  them in place: output ``i`` of OpenCV's layer ``L`` is output ``i`` of the graph's layer
  ``L`` (``<blob>@<layer>`` when a later layer overwrites the blob in place);
* a layer's outputs after the first are not kept when other layers are requested too (a later
  in-place layer reuses their memory): a layer with several outputs is run again on its own;
* a layer type OpenCV lacks is refused in one line naming it, unless nothing reads its
  outputs (a loss at the end of the net): its outputs are then listed as not compared.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.checkpoint import sha256_file
from porting.graph import GraphModule

from .common import ConversionError
from .comparison import Comparison, NotCompared, Row, measure, seeded_array

#: OpenCV may be this many times as far from the float64 run as our float32 run is.
FP32_FACTOR = 2.0


def source_files(ckpt: dict[str, Any], args: argparse.Namespace) -> tuple[Path, Path, list[str]]:
    """The prototxt and caffemodel to run, checked against the digests recorded at
    conversion; notes for a file given explicitly that differs from the converted one."""
    src, meta = ckpt.get("source") or {}, ckpt.get("meta") or {}
    if src.get("framework") != "caffe":
        framework = src.get("framework") or "an unknown framework"
        raise ConversionError(f"{args.checkpoint}: --opencv runs a Caffe source; this "
                              f"checkpoint was converted from {framework}")
    notes, paths = [], []
    for what, given, recorded, digest in (
            ("prototxt", args.prototxt, meta.get("prototxt_path"), meta.get("prototxt_sha256")),
            ("caffemodel", args.caffemodel, src.get("path"), src.get("sha256"))):
        if not given and not recorded:
            raise ConversionError(f"{args.checkpoint}: records no {what} path (converted by an "
                                  f"older convert-caffe); give --{what}")
        path = Path(given or recorded)
        if not path.is_file():
            raise ConversionError(f"{path}: no such file (the {what} "
                                  f"{'given' if given else 'recorded at conversion'}); "
                                  f"give --{what}")
        found = sha256_file(path)
        if digest and found != digest:
            if not given:
                raise ConversionError(
                    f"{path}: SHA-256 {found[:16]}... differs from the {digest[:16]}... "
                    f"recorded at conversion (the file changed); give --{what} to use it")
            notes.append(f"{path} is not the {what} that was converted (SHA-256 "
                         f"{found[:16]}..., recorded {digest[:16]}...)")
        paths.append(path)
    return paths[0], paths[1], notes


def make_inputs(ckpt: dict[str, Any], declared: Mapping[str, tuple[int, ...] | None],
                graph_inputs: list[str], args: argparse.Namespace
                ) -> tuple[dict[str, np.ndarray], str]:
    """One array per graph input, and its description: images (3-channel 4-D inputs) seeded
    or from ``--input``, other inputs (labels) zeros of the declared shape."""
    pre = ckpt.get("preprocess")
    feeds: dict[str, np.ndarray] = {}
    images = None
    if args.input:
        if not pre:
            raise ConversionError(f"{args.checkpoint}: no preprocessing recorded; --input "
                                  "needs it")
        from porting.preprocess import Preprocess

        spec = Preprocess.from_dict(pre)
        images = np.stack([spec(path).numpy() for path in args.input])
    seeds = []
    for i, name in enumerate(graph_inputs):
        shape = declared.get(name)
        if shape is None:
            raise ConversionError(f"{args.checkpoint}: input {name!r} has no declared shape in "
                                  "the prototxt")
        if len(shape) == 4 and shape[1] == 3:
            if images is not None:
                feeds[name] = images
            else:
                hw = tuple(pre["input_size"]) if pre else tuple(shape[2:])
                feeds[name] = seeded_array(args.seed + i, (args.batch, 3, *hw))
                seeds.append(f"{name}: seed {args.seed + i}")
        else:
            n = len(args.input) if images is not None else args.batch
            feeds[name] = np.zeros((n, *shape[1:]), np.float32)
    what = (f"{len(args.input)} image(s)" if images is not None else
            f"seeded uniform(-128, 128) ({', '.join(seeds)}; batch {args.batch})")
    return feeds, what


def _read(prototxt: Path, caffemodel: Path) -> Any:
    import cv2

    try:
        net = cv2.dnn.readNetFromCaffe(os.fspath(prototxt), os.fspath(caffemodel))
    except cv2.error as exc:
        raise ConversionError(f"{prototxt}: OpenCV cannot read it with {caffemodel.name}: "
                              f"{_cv_message(exc)}") from None
    net.enableFusion(False)
    net.enableWinograd(False)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def _cv_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    line = next((t for t in text if "error:" in t), text[-1] if text else "")
    return line.split("error:", 1)[-1].strip()


def _lacking(net: Any) -> dict[str, str]:
    """OpenCV layers it cannot create: name -> Caffe type (OpenCV creates them lazily)."""
    import cv2

    out = {}
    for name in net.getLayerNames():
        try:
            net.getLayer(name)
        except cv2.error as exc:
            text = _cv_message(exc)
            out[name] = text.split('of type "', 1)[1].split('"', 1)[0] if 'of type "' in text \
                else text
    return out


def _without(prototxt: Path, names: set[str], folder: str) -> tuple[Path, set[str]]:
    """The prototxt without the layers ``names`` (terminal layers OpenCV lacks), nor the
    ``Input`` layers only they read (labels); those inputs' names."""
    from google.protobuf import text_format

    from .caffe.reader import load_net

    definition = load_net(prototxt).definition
    kept = [layer for layer in definition.layer if layer.name not in names]
    read = {b for layer in kept for b in layer.bottom}
    unread = {layer.name: set(layer.top) for layer in kept
              if layer.type == "Input" and not set(layer.top) & read}
    del definition.layer[:]
    definition.layer.extend(layer for layer in kept if layer.name not in unread)
    path = Path(folder) / prototxt.name
    path.write_text(text_format.MessageToString(definition))
    return path, set().union(*unread.values())


def run_opencv(prototxt: Path, caffemodel: Path, graph: dict[str, Any],
               feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, list[np.ndarray]],
                                                         dict[str, str]]:
    """Every OpenCV layer's outputs by layer name, and the terminal layers dropped because
    OpenCV lacks their type (name -> type)."""
    net = _read(prototxt, caffemodel)
    dropped = _lacking(net)
    if dropped:
        read = {v for layer in graph["layers"] if layer["name"] not in dropped
                for v in layer["inputs"]}
        for layer in graph["layers"]:
            if layer["name"] in dropped and set(layer["outputs"]) & read:
                raise ConversionError(
                    f"{prototxt}: layer {layer['name']!r} has type {dropped[layer['name']]!r}, "
                    "which OpenCV's dnn module does not implement; --opencv cannot run this net")
        with tempfile.TemporaryDirectory(prefix="reid-porting-opencv-") as folder:
            pruned, unread = _without(prototxt, set(dropped), folder)
            net = _read(pruned, caffemodel)
        feeds = {k: v for k, v in feeds.items() if k not in unread}
    names = list(net.getLayerNames())
    for name, x in feeds.items():
        net.setInput(np.ascontiguousarray(x, dtype=np.float32), name)
    import cv2

    try:
        outs = dict(zip(names, net.forwardAndRetrieve(names), strict=True))
        for name in [n for n in names if len(outs[n]) > 1]:
            outs[name] = net.forwardAndRetrieve([name])[0]
    except cv2.error as exc:
        raise ConversionError(f"{prototxt}: OpenCV failed to run it: {_cv_message(exc)}") \
            from None
    return {n: [np.array(o, copy=True) for o in v] for n, v in outs.items()}, dropped


def _float32_rounding(model: GraphModule, feeds: Mapping[str, np.ndarray],
                      ours: Mapping[str, torch.Tensor], ref: Mapping[str, np.ndarray],
                      rows: list[Row], rtol: float) -> None:
    """Mark ``fp32`` the rows over ``rtol`` where OpenCV is as close to the graph run in
    float64 as our own float32 run is (within :data:`FP32_FACTOR` times its error): float32
    rounding of a deep net on a random input, not a difference of the port. A changed
    weight moves the float64 run too, so it still fails."""
    over = [r for r in rows if r.status == "ok" and not r.max_rel <= rtol]
    if not over:
        return
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        ours64 = exact(**{k: torch.from_numpy(v).double() for k, v in feeds.items()},
                       outputs=sorted({r.name for r in over}))
    for r in over:
        truth = {r.name: ours64[r.name]}
        own = measure(ours, {r.name: ours64[r.name].numpy()}, [(r.name, r.name)])[0].max_rel
        theirs = measure(truth, ref, [(r.name, r.key)])[0].max_rel
        if theirs <= max(rtol, FP32_FACTOR * own):
            r.status = "fp32"


def compare_opencv(ckpt: dict[str, Any], args: argparse.Namespace, model: GraphModule
                   ) -> tuple[Comparison, dict[str, Any]]:
    """Run both sides on the same input and compare every OpenCV output with the graph's
    var, in graph order; the comparison and a description of the reference."""
    import cv2

    from .caffe.reader import load_net

    prototxt, caffemodel, notes = source_files(ckpt, args)
    declared = load_net(prototxt).inputs
    feeds, what = make_inputs(ckpt, declared, list(model.inputs), args)
    rgb = (ckpt.get("preprocess") or {}).get("colour") == "RGB"
    theirs = {k: (v[:, ::-1] if rgb and v.ndim == 4 and v.shape[1] == 3 else v)
              for k, v in feeds.items()}
    outs, dropped = run_opencv(prototxt, caffemodel, model.graph, theirs)
    ref: dict[str, np.ndarray] = {}
    pairs, skipped = [], []
    by_name = {layer["name"]: layer for layer in model.graph["layers"]}
    for layer in model.graph["layers"]:
        for i, var in enumerate(layer["outputs"] if layer["name"] in outs else []):
            key = layer["name"] if i == 0 else f"{layer['name']}.{i}"
            if i < len(outs[layer["name"]]):
                ref[key] = outs[layer["name"]][i]
                pairs.append((var, key))
        if layer["name"] in dropped:
            skipped += [NotCompared(v, f"OpenCV's dnn has no {dropped[layer['name']]} layer "
                                       f"({layer['name']!r})") for v in layer["outputs"]]
    for name, values in outs.items():
        n_ours = len(by_name[name]["outputs"]) if name in by_name else 0
        for i in range(n_ours, len(values)):
            key = name if i == 0 else f"{name}.{i}"
            skipped.append(NotCompared(key, f"no layer {name!r} in the checkpoint's graph"
                                       if name not in by_name else
                                       f"layer {name!r} has {n_ours} output(s) in the graph"))
    paired = {v for v, _ in pairs}
    order = [v for v in model.var_names() if v in paired]
    with torch.no_grad():
        ours = model(**{k: torch.from_numpy(v) for k, v in feeds.items()},
                     outputs=order) if order else {}
    rank = {v: i for i, v in enumerate(order)}
    rows = measure(ours, ref, sorted(pairs, key=lambda p: rank[p[0]]))
    _float32_rounding(model, feeds, ours, ref, rows, args.rtol)
    source = {"opencv": cv2.__version__, "prototxt": str(prototxt),
              "prototxt_sha256": sha256_file(prototxt), "caffemodel": str(caffemodel),
              "caffemodel_sha256": sha256_file(caffemodel), "input": what,
              "reversed_channels": rgb, "notes": notes}
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not rows:
        raise ConversionError(f"{prototxt}: no OpenCV layer is a layer of the checkpoint's "
                              "graph")
    return Comparison(rows, skipped, order), source
