"""Caffe coverage: real public deploy prototxts, converted and compared blob by blob.

For each net of ``bench/coverage/caffe/corpus.json`` (pinned by repository, commit, path and
SHA-256; the prototxts are in ``bench/coverage/caffe/nets/``), in its own subprocess:

1. the bench reads the prototxt itself (``bench/_caffe_nets.py``: a schema-free text
   parser, so fork fields are seen as written) and infers every blob's shape and the weight
   blobs each layer allocates;
2. it writes seeded random weights (positive BatchNorm variances and factors, He-like
   convolution scales) into a ``.caffemodel`` through the project's ``caffe.proto``
   declaration (``porting.converters.caffe.proto``), blobs matched by layer name;
3. OpenCV dnn (``cv2.dnn.readNetFromCaffe``, an independent Caffe runtime; layer fusion
   off, OpenCV backend on the CPU) runs the net on a seeded input of the DECLARED shape and
   gives every layer's every output (``forwardAndRetrieve`` over ``getLayerNames()``);
4. ``convert-caffe`` runs as a subprocess (``python -m porting.convert_caffe ... --arch
   none -q``): exit 0 is a conversion, exit 2 with one line is a refusal, anything else
   (a traceback) is a failure of the converter;
5. the checkpoint is loaded (``porting.checkpoint.load_checkpoint``,
   ``porting.loading.model_from_checkpoint``) and run on the same input; each OpenCV output
   is compared with the var the converter gives that layer's top (``blob@layer`` while a
   later in-place layer overwrites the blob, else ``blob``): same shape and
   ``max|ours - ref| / max|ref| <= 1e-4``.

Status per net: ``match``, ``MISMATCH(<first blob>)`` (silently wrong: it converts and some
blob differs or has another shape), ``refused(<message>)``, ``traceback``,
``unusable(<message>)`` (it converts but the checkpoint does not load or run),
``no-oracle`` (it converts, OpenCV refuses the net: nothing to compare with), and
``out-of-scope`` (Python layers, detection heads; listed, not counted). Exit status 0 (it
is a measurement).

    .venv/bin/python bench/coverage_caffe.py                 # the whole corpus
    .venv/bin/python bench/coverage_caffe.py --quick         # the small nets only
    .venv/bin/python bench/coverage_caffe.py --only mtcnn_onet,fcn8s_voc --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "coverage" / "caffe" / "corpus.json"
NETS = HERE / "coverage" / "caffe" / "nets"
RTOL = 1e-4
CHUNK_BYTES = 768 * 1024 * 1024  # blobs kept at once (OpenCV's and ours) per forward


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _blob(proto: Any, a: Any) -> Any:
    """A ``BlobProto`` with ``shape`` and packed float ``data`` (field 5), parsed by the
    project's schema from the packed bytes (filling ``data`` element by element from Python
    takes minutes for a VGG)."""
    head = proto.BlobProto(shape=proto.BlobShape(dim=list(a.shape))).SerializeToString()
    raw = a.astype("<f4").tobytes()
    return proto.BlobProto.FromString(head + b"\x2a" + _varint(len(raw)) + raw)


def _proto_module() -> Any:
    try:
        from porting.converters.caffe import proto
    except ImportError:  # the flat layout before the converters/caffe package
        from porting.converters import caffe_proto as proto
    return proto


def write_caffemodel(path: Path, layers: list, weights: dict, seed: int) -> int:
    import numpy as np
    from _caffe_nets import random_weights

    proto = _proto_module()
    rng = np.random.default_rng(seed)
    net = proto.NetParameter(name="coverage")
    count = 0
    for layer in layers:
        if layer.name not in weights:
            continue
        lp = net.layer.add(name=layer.name, type=layer.type)
        for a in random_weights(layer, weights[layer.name], rng):
            lp.blobs.append(_blob(proto, a))
            count += a.size
    path.write_bytes(net.SerializeToString())
    return count


def _ours_var(layers: list, idx: int, top_index: int) -> str:
    """The converter's var for a layer's top: ``blob@layer`` while a later layer writes the
    same blob again (in place), else ``blob``."""
    top = layers[idx].tops[top_index]
    later = any(top in layer.tops for layer in layers[idx + 1:])
    return f"{top}@{layers[idx].name}" if later else top


def _opencv_names(layers: list) -> dict[str, int]:
    """OpenCV's name of each layer -> its index: a name seen before gets ``_1``, ``_2``...
    (the Caffe importer's renaming of duplicate layer names)."""
    seen: dict[str, int] = {}
    out = {}
    for i, layer in enumerate(layers):
        n = seen.get(layer.name, 0)
        seen[layer.name] = n + 1
        out[layer.name if n == 0 else f"{layer.name}_{n}"] = i
    return out


def _opencv(prototxt: Path, caffemodel: Path, feeds: dict) -> Any:
    import cv2

    cv2.setNumThreads(2)
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.enableFusion(False)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for k, v in feeds.items():
        net.setInput(v, k)
    return net


def _source_root() -> Path:
    """Where ``porting`` is imported from: this repository, or ``--porting-root`` (an
    installed-layout copy of another revision, to measure a baseline)."""
    return Path(os.environ.get("COVERAGE_CAFFE_PORTING_ROOT", ROOT))


def _convert(prototxt: Path, caffemodel: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "porting.convert_caffe", str(prototxt), str(caffemodel),
           "-o", str(out), "--arch", "none", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=_source_root())
    res: dict[str, Any] = {"rc": proc.returncode, "seconds": time.perf_counter() - t0,
                           "warnings": [ln for ln in proc.stderr.splitlines()
                                        if ln.startswith("warning:")]}
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode == 0:
        res["status"] = "converted"
    elif proc.returncode == 2 and "Traceback" not in proc.stderr and lines:
        res["status"] = "refused"
        res["message"] = lines[-1]
    else:
        res["status"] = "traceback"
        res["message"] = "\n".join(lines[-12:])
    return res


def _rel(a: Any, ref: Any) -> float:
    import numpy as np

    scale = float(np.abs(ref).max()) if ref.size else 0.0
    diff = float(np.abs(a - ref).max()) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def _layer_alone(model: Any, net: Any, by_var: dict, feeds: dict, var: str, ref: Any,
                 ocv_names: set[str]) -> float | None:
    """The layer that makes ``var`` alone: our graph fed OpenCV's own values of that
    layer's inputs, against OpenCV's output. Float32 differences accumulated upstream drop
    out (a Sigmoid of inputs near +-200 turns their 1e-5 relative difference into 5e-4 of
    its 0..1 output); a layer that computes something else does not. ``None`` when an
    input has no OpenCV value."""
    import numpy as np
    import torch

    producer = next((la for la in model.graph["layers"] if var in la["outputs"]), None)
    if producer is None:
        return None
    feed = {k: torch.from_numpy(v) for k, v in feeds.items()}
    for v in producer["inputs"]:
        if v in feed:
            continue
        if v in by_var:
            layer, k = by_var[v]
        elif v.split("@")[0] in ocv_names:  # OpenCV named the layer after its top
            layer, k = v.split("@")[0], 0
        else:
            return None
        value = net.forwardAndRetrieve([layer])[0][k]  # alone: a second top stays intact
        feed[v] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    with torch.no_grad():
        got = model(**feed, outputs=[var])[var].double().numpy()
    return _rel(got.reshape(ref.shape), ref) if got.size == ref.size else None


def _chunks(items: list, sizes: list[int], limit: int) -> list[list]:
    out: list[list] = [[]]
    total = 0
    for item, size in zip(items, sizes, strict=True):
        if out[-1] and total + size > limit:
            out.append([])
            total = 0
        out[-1].append(item)
        total += size
    return out


def run_child(entry: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One net, in this (child) process: weights, OpenCV, converter, comparison."""
    import numpy as np
    from _caffe_nets import infer, layer_top_shapes, net_layers, parse_text

    res: dict[str, Any] = {"name": entry["name"]}
    prototxt = NETS / f"{entry['name']}.prototxt"
    raw = prototxt.read_bytes()
    text = raw.decode("utf-8")
    if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
        return {**res, "status": "bench-error", "message": "prototxt SHA-256 differs from "
                "the manifest"}
    layers, inputs = net_layers(parse_text(text))
    _, weights, notes = infer(layers, inputs)
    per_layer = layer_top_shapes(layers, inputs)
    res["notes"] = notes
    res["batch"] = {k: v[0] for k, v in inputs.items() if v}
    seed = int(hashlib.sha256(entry["name"].encode()).hexdigest()[:8], 16)
    caffemodel = workdir / "weights.caffemodel"
    t0 = time.perf_counter()
    res["weights"] = write_caffemodel(caffemodel, layers, weights, seed)
    res["t_weights"] = round(time.perf_counter() - t0, 1)
    rng = np.random.default_rng(seed + 1)
    feeds = {k: rng.uniform(-100, 100, v).astype(np.float32) for k, v in inputs.items()}

    # the converter first: its result stands even where OpenCV has no answer
    ckpt = workdir / "model.pth"
    conv = _convert(prototxt, caffemodel, ckpt)
    res["convert"] = conv
    if conv["status"] != "converted":
        res["status"] = conv["status"]
        res["message"] = conv["message"]
        return res
    try:
        import torch

        from porting.checkpoint import load_checkpoint
        from porting.loading import model_from_checkpoint

        torch.set_num_threads(2)
        model = model_from_checkpoint(load_checkpoint(ckpt), canonical=False)
        model.eval()
        known = set(model.var_names())
    except Exception as exc:  # noqa: BLE001 - any failure here makes the checkpoint unusable
        res["status"] = "unusable"
        res["message"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        return res

    t0 = time.perf_counter()
    ocv_proto = prototxt
    if re.search(r"^input\s*:", text, re.M) and not re.search(r"^input_(shape|dim)\b", text,
                                                                re.M):
        # Caffe drops a bare header ``input:`` (no shape) when an Input layer declares the
        # blob (UpgradeNetInput); OpenCV counts the blob twice and refuses the net.
        ocv_proto = workdir / "opencv.prototxt"
        ocv_proto.write_text(re.sub(r"^input\s*:.*$", "", text, flags=re.M))
        res["opencv_prototxt"] = "bare header input removed"
    try:
        net = _opencv(ocv_proto, caffemodel, feeds)
        names = list(net.getLayerNames())
    except Exception as exc:  # noqa: BLE001 - cv2.error and friends: OpenCV refuses the net
        res["status"] = "no-oracle"
        res["message"] = f"OpenCV: {str(exc).strip().splitlines()[-1][:300]}"
        return res
    index = _opencv_names(layers)
    by_name = {name: layers[i] for name, i in index.items()}
    pairs = []  # (opencv layer, top index, our var, bytes)
    for name in names:
        layer = by_name.get(name)
        if layer is None:
            continue
        for k in range(len(layer.tops)):
            shp = per_layer.get((layer.name, k), [1])
            pairs.append((name, k, _ours_var(layers, index[name], k), 4 * int(np.prod(shp))))
    by_var = {p[2]: (p[0], p[1]) for p in pairs}
    rows = []
    first_bad = None
    unexposed = []
    batch_ok = True
    # OpenCV keeps only a requested layer's FIRST output out of its buffer reuse: with many
    # layers requested at once, a Slice's second top can be overwritten by a later layer.
    # A layer with several tops is therefore retrieved on its own, in a forward of its own.
    multi = {p[0] for p in pairs if p[1] > 0}
    single = [p for p in pairs if p[0] not in multi]
    chunks = _chunks(single, [p[3] for p in single], CHUNK_BYTES) if single else []
    chunks += [[p for p in pairs if p[0] == name] for name in dict.fromkeys(
        p[0] for p in pairs if p[0] in multi)]
    for chunk in chunks:
        layer_names = list(dict.fromkeys(p[0] for p in chunk))
        try:
            ref_all = net.forwardAndRetrieve(layer_names)
        except Exception as exc:  # noqa: BLE001
            res["status"] = "no-oracle"
            res["message"] = f"OpenCV forward: {str(exc).strip().splitlines()[-1][:300]}"
            return res
        refs = dict(zip(layer_names, ref_all, strict=True))
        wanted = [p[2] for p in chunk if p[2] in known]
        unexposed += [p[2] for p in chunk if p[2] not in known]
        try:
            with torch.no_grad():
                ours = model(**{k: torch.from_numpy(v) for k, v in feeds.items()},
                             outputs=wanted)
        except Exception as exc:  # noqa: BLE001
            res["status"] = "unusable"
            res["message"] = f"forward: {type(exc).__name__}: {str(exc)[:300]}"
            return res
        for name, k, var, _ in chunk:
            if var not in ours or k >= len(refs[name]):
                continue
            ref = np.asarray(refs[name][k], dtype=np.float64)
            a = ours[var].detach().double().numpy()
            row = {"layer": name, "var": var, "ours": list(a.shape), "ref": list(ref.shape)}
            if tuple(a.shape) != tuple(ref.shape):
                if [d for d in a.shape if d != 1] == [d for d in ref.shape if d != 1]:
                    row["singleton_dims_differ"] = True
                    a = a.reshape(ref.shape)
                else:
                    row["status"] = "SHAPE"
            if "status" not in row:
                row["max_rel"] = _rel(a, ref)
                row["status"] = "ok" if row["max_rel"] <= RTOL else "FAIL"
            if row["status"] == "FAIL":
                local = _layer_alone(model, net, by_var, feeds, var, ref, set(names))
                row["layer_alone_rel"] = local
                if local is not None and local <= RTOL:
                    row["status"] = "ok"  # float32 noise from upstream, amplified here
                    row["noise_amplified"] = True
            if row["status"] != "ok" and first_bad is None:
                first_bad = row
            rows.append(row)
        del ours, ref_all, refs
    res["t_compare"] = round(time.perf_counter() - t0, 1)
    res["blobs_compared"] = len(rows)
    res["blobs_unexposed"] = len(unexposed)
    res["worst_rel"] = max((r.get("max_rel", 0.0) for r in rows), default=None)
    res["blobs_noise_amplified"] = sum(bool(r.get("noise_amplified")) for r in rows)
    res["batch_ok"] = batch_ok
    wrong = entry.get("opencv_wrong_types", [])
    if first_bad is not None and by_name[first_bad["layer"]].type in wrong:
        # OpenCV's import of this type is checked to disagree with the type's formula on
        # OpenCV's own blobs (see the manifest's oracle_note): nothing from there on is an
        # oracle.
        res["status"] = "no-oracle"
        res["message"] = (f"OpenCV's {by_name[first_bad['layer']].type} is wrong from "
                          f"{first_bad['var']} on: {entry.get('oracle_note', '')}")
        res["blobs_matching_before"] = sum(r["status"] == "ok" for r in rows)
    elif first_bad is not None:
        res["status"] = "MISMATCH"
        res["message"] = (f"{first_bad['var']}: {first_bad['status']} ours "
                          f"{first_bad['ours']} ref {first_bad['ref']}"
                          + (f" rel {first_bad['max_rel']:.3g}" if "max_rel" in first_bad
                             else ""))
        res["mismatched"] = sum(r["status"] != "ok" for r in rows)
    elif not rows:
        res["status"] = "no-oracle"
        res["message"] = "no blob could be compared"
    else:
        res["status"] = "match"
    return res


CLASS = {"match": "converted-and-match", "MISMATCH": "silently-wrong", "refused": "refused",
         "traceback": "traceback", "unusable": "converted-but-unusable",
         "no-oracle": "converted-no-oracle", "bench-error": "bench-error",
         "timeout": "bench-error"}


def _run_one(entry: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cov_caffe_") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", entry["name"],
               "--workdir", tmp, "--result", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        if "COVERAGE_CAFFE_PORTING_ROOT" in env:
            env["PYTHONPATH"] = env["COVERAGE_CAFFE_PORTING_ROOT"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"name": entry["name"], "status": "timeout",
                    "message": f"over {timeout:.0f} s"}
        if out.exists():
            res = json.loads(out.read_text())
        else:
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-6:])
            res = {"name": entry["name"], "status": "bench-error",
                   "message": f"child exit {proc.returncode}: {tail}"}
        res["seconds"] = round(time.perf_counter() - t0, 1)
        return res


def _short(res: dict[str, Any]) -> str:
    s = res["status"]
    msg = res.get("message", "")
    if s in ("refused", "unusable", "no-oracle", "MISMATCH", "bench-error", "timeout"):
        return f"{s}({_reason(msg)[:110]})"
    if s == "traceback":
        return f"traceback({msg.splitlines()[-1][:100] if msg else ''})"
    if s == "match":
        return (f"match ({res['blobs_compared']} blobs, worst {res['worst_rel']:.2g}"
                + (f", {res['blobs_unexposed']} not exposed" if res["blobs_unexposed"] else "")
                + (f", {res['blobs_noise_amplified']} within 1e-4 only layer by layer"
                   if res.get("blobs_noise_amplified") else "")
                + ")")
    return s


def _reason(msg: str) -> str:
    """A refusal's reason without the ``error:`` prefix and the file path (for the totals)."""
    return re.sub(r"^(error: )?\S+\.(prototxt|caffemodel): ", "", msg)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated net names")
    p.add_argument("--quick", action="store_true", help="only the nets marked quick")
    p.add_argument("--json", metavar="FILE", help="write every net's result and the totals")
    p.add_argument("--timeout", type=float, default=900, help="seconds per net (default 900)")
    p.add_argument("--jobs", type=int, default=1,
                   help="nets run at the same time (default 1; each takes 2 threads)")
    p.add_argument("--update", metavar="JSON",
                   help="merge this run's nets into an earlier --json result (totals over "
                   "the merged set; written back unless --json names another file)")
    p.add_argument("--porting-root", metavar="DIR",
                   help="import porting from DIR (a copy of another revision laid out as "
                   "installed: porting/, porting/converters/...) to measure a baseline")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    corpus = json.loads(CORPUS.read_text())["nets"]
    if args.porting_root:
        os.environ["COVERAGE_CAFFE_PORTING_ROOT"] = str(Path(args.porting_root).resolve())
    if args.child:
        sys.path.insert(0, str(HERE))
        entry = next(e for e in corpus if e["name"] == args.child)
        try:
            res = run_child(entry, Path(args.workdir))
        except Exception:  # noqa: BLE001 - the bench's own failure, recorded as such
            res = {"name": entry["name"], "status": "bench-error",
                   "message": traceback.format_exc()[-600:]}
        Path(args.result).write_text(json.dumps(res))
        return 0
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {e["name"] for e in corpus}
        if unknown:
            p.error(f"not in the corpus: {sorted(unknown)}")
        corpus = [e for e in corpus if e["name"] in wanted]
    elif args.quick:
        corpus = [e for e in corpus if e.get("quick")]
    def one(entry: dict[str, Any]) -> dict[str, Any]:
        res = _run_one(entry, args.timeout)
        res["in_scope"] = entry.get("in_scope", True)
        res["class"] = CLASS.get(res["status"], res["status"]) if res["in_scope"] \
            else "out-of-scope"
        scope = "" if res["in_scope"] else "  [out of scope: " + entry["scope_note"] + "]"
        print(f"{entry['name']:<30} {res.get('seconds', 0):>6.1f}s  {_short(res)}{scope}",
              flush=True)
        return res

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each net is its own process
        results = list(pool.map(one, corpus))
    if args.update:  # these nets' new results replace theirs in an earlier run's JSON
        fresh = {r["name"]: r for r in results}
        earlier = json.loads(Path(args.update).read_text())["nets"]
        results = [fresh.pop(r["name"], r) for r in earlier] + list(fresh.values())
        args.json = args.json or args.update
    totals = Counter(r["class"] for r in results)
    refusals = Counter(_reason(r.get("message", "")) for r in results
                       if r["class"] == "refused")
    in_scope = [r for r in results if r["in_scope"]]
    converted = sum(r["class"] in ("converted-and-match", "converted-no-oracle")
                    for r in in_scope)
    print(f"\n{len(results)} nets ({len(in_scope)} in scope): "
          + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    print(f"in scope converted (matching or without an oracle): {converted}/{len(in_scope)}")
    for reason, n in refusals.most_common():
        print(f"  refused x{n}: {reason[:150]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"totals": dict(totals),
                                               "refusals": dict(refusals),
                                               "nets": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
