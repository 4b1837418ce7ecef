"""The seeds (unmutated inputs, built once) and the generation of one mutated case per format."""

from __future__ import annotations

import contextlib
import io
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .caffe import caffemodel_edit, prototxt_edit
from .checkpoint import checkpoint_edit
from .common import FIXTURES, MARKER, ROOT, Case, Payload, mutate_bytes
from .features import feature_edit
from .mat import h5_edit, mat_struct_edit

# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------

class Seeds:
    """The unmutated inputs, built once in ``workdir/seeds``."""

    def __init__(self, workdir: Path) -> None:
        import scipy.io
        import torch

        sys.path.insert(0, str(ROOT / "tests"))
        from matv73 import save_v73

        from porting.converters.matfile import load_mat

        d = workdir / "seeds"
        d.mkdir(parents=True, exist_ok=True)
        mat = scipy.io.loadmat(FIXTURES / "matconvnet/caffenet_narrow/model.mat")
        norm = mat["meta"][0, 0]["normalization"][0, 0]
        norm["averageImage"] = norm["averageImage"].reshape(-1, 3).mean(0).reshape(1, 1, 3) \
            .astype(np.float32)
        classes = mat["meta"][0, 0]["classes"][0, 0]  # 1000 names: most of the file's objects
        for name in classes.dtype.names:
            classes[name] = classes[name][:, :3]
        self.mat_struct = mat
        scipy.io.savemat(d / "model.mat", {k: v for k, v in mat.items()
                                           if not k.startswith("__")})
        self.mat7 = (d / "model.mat").read_bytes()
        save_v73(d / "model73.mat", load_mat(d / "model.mat"))
        self.mat73 = (d / "model73.mat").read_bytes()
        self.prototxt = (FIXTURES / "caffe/caffenet_narrow/deploy.prototxt").read_text()
        self.caffemodel = (FIXTURES / "caffe/caffenet_narrow/weights.caffemodel").read_bytes()

        from porting.validation.datasets import load_market1501
        from porting.validation.mini import build_mini_market

        self.mini = d / "market"
        if not (self.mini / "query").is_dir():
            build_mini_market(self.mini)
        data = load_market1501(self.mini, parts=("query", "gallery"), check_images="none")
        rng = np.random.default_rng(0)
        self.query = rng.standard_normal((len(data.query.pids), 16)).astype(np.float32)
        self.gallery = rng.standard_normal((len(data.gallery.pids), 16)).astype(np.float32)

        from porting.checkpoint import make_checkpoint
        from porting.converters.caffe import main as convert_caffe

        graph_ckpt = d / "graph.pth"
        with contextlib.redirect_stdout(io.StringIO()):
            rc = convert_caffe([str(FIXTURES / "caffe/caffenet_narrow/deploy.prototxt"),
                                str(FIXTURES / "caffe/caffenet_narrow/weights.caffemodel"),
                                "-o", str(graph_ckpt), "-q", "--arch", "none"])
        assert rc == 0, "seed conversion failed"
        self.graph_ckpt = graph_ckpt.read_bytes()
        from porting.models import build_model

        spec = {"name": "siamese", "trunk": {"name": "resnet50", "kwargs": {
            "semantics": "matconvnet", "num_classes": None, "width": 2}},
            "kwargs": {"feat_dim": 16, "num_ids": 5, "dropout": 0.9}}
        torch.manual_seed(0)
        model = build_model(spec)
        canon = d / "canonical.pth"
        torch.save(make_checkpoint(model.state_dict(), arch=spec,
                                   preprocess={"input_size": [224, 224], "mean": [1.0, 2.0, 3.0]},
                                   recipe="market-matconvnet"), canon)
        self.canonical_ckpt = canon.read_bytes()


# --------------------------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------------------------

def _save_features(arr: Any, kind: str) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    if kind == "npy":
        np.save(buf, arr, allow_pickle=True)
        return buf.getvalue()
    if kind == "mat":
        scipy.io.savemat(buf, {"ff": arr})
        return buf.getvalue()
    from matv73 import save_v73

    with tempfile.TemporaryDirectory() as t:
        save_v73(Path(t) / "f.mat", {"ff": arr})
        return (Path(t) / "f.mat").read_bytes()


def make_case(fmt: str, rng: random.Random, seeds: Seeds, case_dir: Path) -> Case:
    """One mutated input for ``fmt`` (structure-aware about half the time)."""
    import copy

    marker = str(case_dir / MARKER)
    structural = rng.random() < 0.55
    if fmt == "mat7":
        if structural:
            import scipy.io

            mat = copy.deepcopy(seeds.mat_struct)
            what = mat_struct_edit(rng, mat)
            buf = io.BytesIO()
            scipy.io.savemat(buf, {k: v for k, v in mat.items() if not k.startswith("__")})
            data = buf.getvalue()
        else:
            data, what = mutate_bytes(rng, seeds.mat7)
        return Case({"model.mat": data}, what, "matconvnet", ["model.mat"])
    if fmt == "mat73":
        if structural:
            tmp = case_dir / "model.mat"
            tmp.write_bytes(seeds.mat73)
            what = h5_edit(rng, tmp)
            data = tmp.read_bytes()
            tmp.unlink()
        else:
            data, what = mutate_bytes(rng, seeds.mat73)
        return Case({"model.mat": data}, what, "matconvnet", ["model.mat"])
    if fmt == "caffemodel":
        data, what = (caffemodel_edit(rng, seeds.caffemodel) if structural
                      else mutate_bytes(rng, seeds.caffemodel))
        return Case({"deploy.prototxt": seeds.prototxt.encode(), "weights.caffemodel": data},
                    what, "caffe", ["deploy.prototxt", "weights.caffemodel"])
    if fmt == "prototxt":
        if structural or rng.random() < 0.5:
            text, what = prototxt_edit(rng, seeds.prototxt)
            data = text.encode()
        else:
            data, what = mutate_bytes(rng, seeds.prototxt.encode())
        return Case({"deploy.prototxt": data, "weights.caffemodel": seeds.caffemodel},
                    what, "caffe", ["deploy.prototxt", "weights.caffemodel"])
    if fmt == "features":
        kind = rng.choice(["npy", "mat", "mat73"])
        ext = "npy" if kind == "npy" else "mat"
        which = rng.choice(["query", "gallery"])
        q, g = seeds.query, seeds.gallery
        files = {f"q.{ext}": _save_features(q, kind), f"g.{ext}": _save_features(g, kind)}
        name = f"{which[0]}.{ext}"
        base = q if which == "query" else g
        if structural:
            arr, what = feature_edit(rng, base, marker)
            try:
                files[name] = _save_features(arr, kind)
            except Exception as exc:  # noqa: BLE001 - the writer cannot store it: as bytes
                files[name], what = mutate_bytes(rng, files[name])
                what = f"{what} (writer refused: {type(exc).__name__})"
        else:
            files[name], what = mutate_bytes(rng, files[name])
        return Case(files, f"{kind} {which}: {what}", "validate", [f"q.{ext}", f"g.{ext}"])
    # checkpoints
    import torch

    base = seeds.canonical_ckpt if rng.random() < 0.25 else seeds.graph_ckpt
    label = "canonical" if base is seeds.canonical_ckpt else "graph"
    if structural:
        ck = torch.load(io.BytesIO(base), weights_only=True)
        what = checkpoint_edit(rng, ck, marker)
        if rng.random() < 0.1:
            ck.setdefault("meta", {})
            if isinstance(ck["meta"], dict):
                ck["meta"]["note"] = Payload(marker)
                what += " + payload in meta"
        buf = io.BytesIO()
        torch.save(ck, buf)
        data = buf.getvalue()
    else:
        data, what = mutate_bytes(rng, base)
    return Case({"net.pth": data}, f"{label}: {what}", "load", ["net.pth"])
