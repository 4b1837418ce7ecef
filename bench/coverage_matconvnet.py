"""MatConvNet coverage: MatConvNet's own ``utils/import-caffe.py`` on the Caffe corpus, then
``convert-matconvnet`` on the ``.mat`` files it writes.

For each net of ``bench/coverage/caffe/corpus.json`` (the Caffe coverage corpus), in its own
subprocess:

1. seeded random weights are written into a ``.caffemodel`` exactly as
   ``bench/coverage_caffe.py`` writes them (its ``write_caffemodel``), and ``convert-caffe``
   converts the prototxt + weights: the Caffe reference (itself checked against OpenCV dnn by
   ``coverage_caffe.py``);
2. MatConvNet's importer runs on the same files (DagNN output, its defaults: transpose,
   simplify, BGR input flipped to RGB). Two rewrites keep the same Caffe net and let the
   importer get further (:func:`importer_compatible`): it reads only the deprecated net-level
   ``input``/``input_shape`` fields (an ``Input`` layer: it stops with a NameError, unable to
   size the net), and it indexes a convolution's ``pad``/``stride``, repeated fields since
   Caffe's N-D convolution (omitted: an IndexError), so Caffe's defaults are written out. The
   layers it skips are read from its own ``Warning: unknown layer type`` lines;
3. ``convert-matconvnet`` converts the ``.mat`` (exit 0 converted, exit 2 one line refused);
4. both checkpoints run on the same seeded input (the MatConvNet one on the channel-reversed
   input: the importer flips the first convolution to RGB). Every var present in both graphs
   under the same name (MatConvNet keeps Caffe's blob names; the importer renames an in-place
   layer's output with ``x`` suffixes) is compared, ``max|mcn - caffe| / max|caffe| <= 1e-4``.

What the importer loses shows as: ``import-failed`` (it cannot parse or size the net),
``skipped`` types (dropped with a warning: PReLU, Input, Flatten...), renamed in-place vars,
``MISMATCH(var)`` (it converted and computed something else: a field it dropped). A net is
``match`` when every common var agrees. Exit status 0 (it is a measurement).

The importer is MatConvNet's Python 2 code; it is not part of this repository. The bench makes
a Python 3 copy at run time from a MatConvNet checkout (``--matconvnet``): ``lib2to3``, then
Python 2's ``/`` (integers floor; ``lib2to3`` keeps ``/`` as true division), float sizes
given to ``reshape`` made integers (the NumPy of its time accepted them), ``np.object`` ->
``object``, no ``scipy.misc`` (removed from SciPy, unused), the output file
opened in binary mode, protobuf's repeated-field container recognised by today's class name
and read with ``list()`` (the importer tests the old pure-Python class and reads its private
``_values``), and one more ``--caffe-variant`` (``caffe_corpus``) for the Caffe
``caffe.proto`` of the corpus (``--caffe-proto``, compiled with ``protoc``), read as the
importer reads its ``caffe_b590f1d`` variant. Nothing else is changed.

    .venv/bin/python bench/coverage_matconvnet.py --matconvnet /work/ext/matconvnet \\
        --caffe-proto /path/to/BVLC-caffe-9b891540/src/caffe/proto/caffe.proto [--quick]
        [--only bvlc_caffenet,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "coverage" / "caffe" / "corpus.json"
NETS = HERE / "coverage" / "caffe" / "nets"
RTOL = 1e-4
VARIANT = "caffe_corpus"


# --------------------------------------------------------------------------------------------
# The importer, made runnable under Python 3
# --------------------------------------------------------------------------------------------

def prepare_importer(matconvnet: Path, caffe_proto: Path, out: Path) -> Path:
    """A Python 3 copy of ``utils/import-caffe.py`` + ``utils/layers.py`` in ``out`` (see the
    module docstring for the exact edits); returns the script's path."""
    utils = matconvnet / "utils"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(utils / "import-caffe.py", out / "import_caffe.py")
    shutil.copy(utils / "layers.py", out / "layers.py")
    subprocess.run([sys.executable, "-W", "ignore", "-m", "lib2to3", "-w", "-n", "-f", "all",
                    str(out / "import_caffe.py"), str(out / "layers.py")],
                   check=True, capture_output=True)
    for name in ("import_caffe.py", "layers.py"):
        path = out / name
        text = re.sub(r"\bnp\.object\b", "object", path.read_text())
        text = text.replace("import scipy.misc\n", "\n")
        path.write_text(text)
    script = out / "import_caffe.py"
    text = script.read_text()
    # protobuf's containers, as today's runtime names them (the importer tests the old pure-
    # Python class and reads its private ``_values``; the pure-Python runtime has them but
    # takes hours on a VGG's weights)
    old_check = "isinstance(x,google.protobuf.internal.containers.RepeatedScalarFieldContainer)"
    if old_check not in text or ".dim._values" not in text:
        raise RuntimeError(f"{utils / 'import-caffe.py'}: not the importer this bench knows")
    text = text.replace(old_check, "type(x).__name__ in ('RepeatedScalarFieldContainer', "
                                   "'RepeatedScalarContainer')")
    text = re.sub(r"(\w[\w.\[\]]*)\.dim\._values", r"list(\1.dim)", text)
    text = text.replace("type=argparse.FileType('w'),\n                    help='Output MATLAB",
                        "type=argparse.FileType('wb'),\n                    help='Output MATLAB")
    anchor = "elif args.caffe_variant == 'caffe_fastrcnn':"
    listing = "if args.caffe_variant in ['caffe_b590f1d', 'caffe_fastrcnn']:"
    if anchor not in text or listing not in text:
        raise RuntimeError(f"{utils / 'import-caffe.py'}: not the importer this bench knows")
    text = text.replace(anchor, f"elif args.caffe_variant == '{VARIANT}':\n"
                                f"  import proto.{VARIANT}_pb2 as caffe_pb2\n{anchor}", 1)
    text = text.replace(listing, f"if args.caffe_variant in ['caffe_b590f1d', "
                                 f"'caffe_fastrcnn', '{VARIANT}']:")
    script.write_text(text)
    for name in ("import_caffe.py", "layers.py"):
        (out / name).write_text(_python2_division((out / name).read_text()))
    proto = out / "proto"
    proto.mkdir(exist_ok=True)
    (proto / "__init__.py").write_text("")
    shutil.copy(caffe_proto, proto / f"{VARIANT}.proto")
    subprocess.run(["protoc", f"--proto_path={proto}", f"--python_out={proto}",
                    f"{VARIANT}.proto"], check=True, capture_output=True)
    return script


class _Py2Division(ast.NodeTransformer):
    """``a / b`` -> ``_py2div(a, b)`` (and ``a /= b``): Python 2's ``/`` floors integers;
    ``x.reshape(dims)`` -> ``_py2reshape(x, dims)``: the NumPy of its time took the float
    sizes Python 2's ``floor`` returns."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Div):
            return ast.Call(ast.Name("_py2div", ast.Load()), [node.left, node.right], [])
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "reshape" and not (
                isinstance(f.value, ast.Name) and f.value.id in ("np", "numpy")):
            return ast.Call(ast.Name("_py2reshape", ast.Load()), [f.value, *node.args],
                            node.keywords)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Div):
            target = ast.Name(node.target.id, ast.Load()) if isinstance(node.target, ast.Name) \
                else node.target
            value = ast.Call(ast.Name("_py2div", ast.Load()), [target, node.value], [])
            return ast.Assign([node.target], value)
        return node


_PY2DIV = """
import numbers as _numbers
def _py2div(a, b):
    if isinstance(a, _numbers.Integral) and isinstance(b, _numbers.Integral):
        return a // b
    return a / b
def _intdims(d):
    if isinstance(d, (list, tuple)):
        return type(d)(_intdims(v) for v in d)
    return int(d) if isinstance(d, float) and d.is_integer() else d
def _py2reshape(a, *shape, **kw):
    return a.reshape(*[_intdims(d) for d in shape], **kw)
"""


def _python2_division(source: str) -> str:
    """The module with Python 2's division (the importer relies on ``int / int`` flooring, e.g.
    a filter's depth ``channels / group``), which ``lib2to3`` leaves as true division."""
    tree = ast.fix_missing_locations(_Py2Division().visit(ast.parse(source)))
    body = ast.unparse(tree)
    lines = body.split("\n")
    # after any ``from __future__`` import
    at = next((i + 1 for i, ln in reversed(list(enumerate(lines)))
               if ln.startswith("from __future__")), 0)
    return "\n".join(lines[:at] + _PY2DIV.split("\n") + lines[at:]) + "\n"


def _pb2(importer: Path) -> Any:
    sys.path.insert(0, str(importer.parent))
    import importlib

    return importlib.import_module(f"proto.{VARIANT}_pb2")


def importer_compatible(text: str, pb2: Any) -> tuple[str, list[str]]:
    """The same net as the importer can read it, and what was rewritten: ``Input`` layers moved
    to the net-level ``input``/``input_shape`` (the only input it reads; without them it cannot
    size the net), and a convolution's omitted ``pad``/``stride`` written out as Caffe's
    defaults 0/1 (these are repeated fields since Caffe's N-D convolution; the importer indexes
    them and crashes on an empty one)."""
    from google.protobuf import text_format

    net = pb2.NetParameter()
    text_format.Merge(text, net)
    notes = []
    keep = []
    for layer in net.layer:
        if layer.type == "Input":
            for k, top in enumerate(layer.top):
                net.input.append(top)
                shape = layer.input_param.shape[min(k, len(layer.input_param.shape) - 1)]
                net.input_shape.add().dim.extend([1, *list(shape.dim)[1:]])
                notes.append(f"Input {top}")
            continue
        if layer.type in ("Convolution", "Deconvolution"):
            p = layer.convolution_param
            if not p.pad and not p.HasField("pad_h") and not p.HasField("pad_w"):
                p.pad.append(0)
                notes.append(f"{layer.name}.pad")
            if not p.stride and not p.HasField("stride_h") and not p.HasField("stride_w"):
                p.stride.append(1)
                notes.append(f"{layer.name}.stride")
        keep.append(layer)
    del net.layer[:]
    net.layer.extend(keep)
    return text_format.MessageToString(net), notes


# --------------------------------------------------------------------------------------------
# One net
# --------------------------------------------------------------------------------------------

def _cli(module: str, args: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, cwd=ROOT)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    res: dict[str, Any] = {"rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode == 0:
        res["status"] = "converted"
    elif proc.returncode == 2 and "Traceback" not in proc.stderr and lines:
        res["status"] = "refused"
        res["message"] = lines[-1][:400]
    else:
        res["status"] = "traceback"
        res["message"] = "\n".join(lines[-8:])[:800]
    return res


def matching_vars(caffe: dict[str, Any], mcn: dict[str, Any]) -> list[tuple[str, str]]:
    """(MatConvNet var, Caffe var) pairs: the outputs of the layers both graphs hold (the
    importer keeps Caffe's layer names; it renames an in-place output ``conv1x``, Caffe's
    converter ``conv1@conv1``). Where the importer merged a Scale into the BatchNorm before
    it (``--simplify``), the BatchNorm's output is compared with the Scale's."""
    mcn_layers = {layer["name"] for layer in mcn["layers"]}
    by_name = {layer["name"]: layer for layer in caffe["layers"]}
    pairs = []
    for layer in mcn["layers"]:
        theirs = by_name.get(layer["name"])
        if theirs is None or not theirs["outputs"] or not layer["outputs"]:
            continue
        target = theirs["outputs"][0]
        for later in caffe["layers"]:
            if (later["type"] == "Scale" and later["name"] not in mcn_layers
                    and later["inputs"][:1] == [target]):
                target = later["outputs"][0]
        pairs.append((layer["outputs"][0], target))
    return pairs


def run_child(entry: dict[str, Any], importer: Path, work: Path) -> dict[str, Any]:
    import numpy as np
    import torch
    from _caffe_nets import infer, net_layers, parse_text
    from coverage_caffe import write_caffemodel

    res: dict[str, Any] = {"name": entry["name"]}
    prototxt = NETS / f"{entry['name']}.prototxt"
    text = prototxt.read_text()
    if hashlib.sha256(text.encode()).hexdigest() != entry["sha256"]:
        return {**res, "status": "bench-error", "message": "prototxt SHA-256 differs"}
    layers, inputs = net_layers(parse_text(text))
    _, weights, _ = infer(layers, inputs)
    seed = int(hashlib.sha256(entry["name"].encode()).hexdigest()[:8], 16)
    caffemodel = work / "weights.caffemodel"
    write_caffemodel(caffemodel, layers, weights, seed)
    res["caffe"] = _cli("porting.convert_caffe", [str(prototxt), str(caffemodel), "-o",
                                                   str(work / "caffe.pth"), "--arch", "none",
                                                   "-q"])
    # the importer
    try:
        fixed, rewritten = importer_compatible(text, _pb2(importer))
    except Exception as exc:  # noqa: BLE001 - the importer's protobuf cannot read the net
        return {**res, "status": "import-failed",
                "message": f"caffe.proto parse: {str(exc).splitlines()[0][:300]}"}
    res["rewritten"] = len(rewritten)
    (work / "deploy.prototxt").write_text(fixed)
    mat = work / "imported.mat"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(importer), f"--caffe-variant={VARIANT}",
                           "--caffe-data", str(caffemodel), str(work / "deploy.prototxt"),
                           str(mat)], capture_output=True, text=True, cwd=importer.parent)
    res["t_import"] = round(time.perf_counter() - t0, 1)
    skipped = re.findall(r"Warning: unknown layer type (\S+)", proc.stdout)
    res["skipped"] = dict(Counter(skipped))
    if proc.returncode != 0 or not mat.exists():
        err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {**res, "status": "import-failed", "message": (err[-1] if err else
                                                              f"exit {proc.returncode}")[:300]}
    res["mcn"] = _cli("porting.convert_matconvnet", [str(mat), "-o", str(work / "mcn.pth"),
                                                     "--arch", "none", "--no-test-head", "-q"])
    if res["mcn"]["status"] != "converted":
        return {**res, "status": f"mcn-{res['mcn']['status']}",
                "message": res["mcn"].get("message", "")}
    if res["caffe"]["status"] != "converted":
        return {**res, "status": "no-reference", "message": res["caffe"].get("message", "")}
    from porting.checkpoint import load_checkpoint
    from porting.loading import model_from_checkpoint

    torch.set_num_threads(2)
    caffe = model_from_checkpoint(load_checkpoint(work / "caffe.pth"), canonical=False).eval()
    mcn = model_from_checkpoint(load_checkpoint(work / "mcn.pth"), canonical=False).eval()
    rng = np.random.default_rng(seed + 1)
    feeds = {k: rng.uniform(-100, 100, [1, *v[1:]]).astype(np.float32)
             for k, v in inputs.items()}
    pairs = matching_vars(caffe.graph, mcn.graph)
    res["renamed_inplace"] = sum(1 for a, b in pairs if a != b)
    common = [a for a, _ in pairs]
    try:
        with torch.no_grad():
            ref = caffe(**{k: torch.from_numpy(v) for k, v in feeds.items()},
                        outputs=[b for _, b in pairs])
            # the importer made the first convolution read RGB
            ours = mcn(**{k: torch.from_numpy(np.ascontiguousarray(v[:, ::-1]))
                          for k, v in feeds.items() if k in mcn.inputs}, outputs=common)
    except Exception as exc:  # noqa: BLE001
        return {**res, "status": "unusable", "message": f"{type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}"}
    ref = {a: ref[b] for a, b in pairs}
    worst, first_bad = 0.0, None
    for v in common:
        a, b = ours[v].double(), ref[v].double()
        if [d for d in a.shape if d != 1] != [d for d in b.shape if d != 1]:
            first_bad = first_bad or f"{v}: shape {list(a.shape)} vs Caffe {list(b.shape)}"
            continue
        rel = float((a.reshape(b.shape) - b).abs().max() / max(float(b.abs().max()), 1e-30))
        worst = max(worst, rel)
        if rel > RTOL and first_bad is None:
            first_bad = f"{v}: rel {rel:.3g}"
    res["vars_compared"] = len(common)
    res["worst_rel"] = worst
    if first_bad:
        return {**res, "status": "MISMATCH", "message": first_bad}
    return {**res, "status": "match" if common else "nothing-common"}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def _child_main(name: str, importer: Path) -> int:
    sys.path[:0] = [str(HERE), str(ROOT)]
    entry = next(e for e in json.loads(CORPUS.read_text())["nets"] if e["name"] == name)
    with tempfile.TemporaryDirectory(prefix="cov-mcn-") as tmp:
        try:
            res = run_child(entry, importer, Path(tmp))
        except Exception as exc:  # noqa: BLE001 - the bench reports, never stops
            res = {"name": name, "status": "bench-error", "message": f"{type(exc).__name__}: "
                   f"{exc}"[:400], "trace": traceback.format_exc()[-1500:]}
    print("@@RESULT@@" + json.dumps(res))
    return 0


def _run_one(entry: dict[str, Any], importer: Path, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", entry["name"], "--importer", str(importer)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": entry["name"], "status": "timeout"}
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    return {"name": entry["name"], "status": "bench-error",
            "message": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--matconvnet", type=Path, help="a vlfeat/matconvnet checkout")
    p.add_argument("--caffe-proto", type=Path,
                   help="Caffe's caffe.proto at the corpus's commit (BVLC 9b891540)")
    p.add_argument("--quick", action="store_true", help="the corpus's quick nets only")
    p.add_argument("--only", help="comma-separated net names")
    p.add_argument("--json", type=Path, help="write every result here")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--importer", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child_main(args.child, args.importer)
    if not args.matconvnet or not args.caffe_proto:
        p.error("--matconvnet and --caffe-proto are required")
    nets = [e for e in json.loads(CORPUS.read_text())["nets"] if e.get("in_scope", True)]
    if args.quick:
        nets = [e for e in nets if e.get("quick")]
    if args.only:
        wanted = set(args.only.split(","))
        nets = [e for e in nets if e["name"] in wanted]
    results = []
    with tempfile.TemporaryDirectory(prefix="mcn-importer-") as tmp:
        importer = prepare_importer(args.matconvnet, args.caffe_proto, Path(tmp))
        for entry in nets:
            res = _run_one(entry, importer, args.timeout)
            results.append(res)
            skipped = ",".join(f"{k}x{n}" for k, n in res.get("skipped", {}).items())
            print(f"{res['name']:28s} {res['status']:16s} "
                  f"{'skipped ' + skipped if skipped else '':30s} "
                  f"{res.get('message', '')[:110]}", flush=True)
    counts = Counter(r["status"] for r in results)
    print("\n" + ", ".join(f"{k}: {v}" for k, v in counts.most_common()))
    lost = Counter()
    for r in results:
        lost.update(r.get("skipped", {}))
    if lost:
        print("layer types the importer skipped: " + ", ".join(
            f"{k} ({v})" for k, v in lost.most_common()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
