"""The fast inference forms (:mod:`porting.inference`) against every fixture family, and the
exact path bit for bit.

Each family is run the way its own tests run it (tests/test_models_*.py for the canonical
classes, tests/test_convert_*.py for converted graphs), once exact and once fast, against
the real framework's outputs. The fast path must stay within the family's documented
tolerance (the TOL of those test files); the exact path must give bit-identical tensors
to a module whose modes were never touched, also after a round trip through the fast
forms. :func:`agreement_table` prints the README's measure for both paths
(``python tests/test_fast_path.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import porting
from porting.converters.caffe import main as caffe_main
from porting.converters.compare import compare
from porting.converters.matconvnet import main as mcn_main
from porting.graph import GraphModule
from porting.inference import exact_inference, fast_inference, is_exact, set_exact

from conftest import FIXTURES, caffemodel, rel_err, seeded_input

MCN = FIXTURES / "matconvnet"
CAFFE = FIXTURES / "caffe"
IO = FIXTURES / "models"

Outputs = dict[str, tuple[torch.Tensor, np.ndarray]]
#: A family member: ``run(exact) -> {name: (ours, reference)}`` plus its documented tolerance.
Runner = Callable[[bool], Outputs]


def _capture(model: torch.nn.Module, names: dict[str, str]) -> dict[str, torch.Tensor]:
    """Module outputs by var name (cloned: a later in-place ReLU must not rewrite them), and a
    block's pre-ReLU sum for paths ending in ``.relu``."""
    outs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for path, var in names.items():
        if path not in modules:
            continue
        modules[path].register_forward_hook(
            lambda m, i, o, var=var: outs.__setitem__(var, o.detach().clone()))
        if path.endswith(".relu"):
            modules[path].register_forward_pre_hook(
                lambda m, i, v=var[:-1]: outs.__setitem__(v, i[0].detach().clone()))
    return outs


def _pair(outs: dict[str, torch.Tensor], ref) -> Outputs:
    keys = ref.files if hasattr(ref, "files") else list(ref)
    return {k: (outs[k], ref[k]) for k in keys if k in outs and not k.startswith("__")}


# --- canonical classes, MatConvNet semantics (tests/test_models_matconvnet.py) -------------

def _mcn_simplenn(build: str, npz: str) -> Runner:
    def run(exact: bool) -> Outputs:
        import test_models_matconvnet as t

        model = set_exact(getattr(t, build)(), exact)
        io = np.load(IO / npz)
        outs = _capture(model, {n: n for n, _ in model.named_modules() if n})
        with torch.no_grad():
            outs["prob"] = torch.softmax(model(torch.from_numpy(io["input"])), dim=1)
        return _pair(outs, io)
    return run


def _mcn_resnet(npz: str) -> Runner:
    def run(exact: bool) -> Outputs:
        import test_models_matconvnet as t

        from mcn_weights import resnet_var_names

        model, _ = t._resnet(1000)
        set_exact(model, exact)
        io = np.load(IO / npz)
        outs = _capture(model, resnet_var_names(model) | {"fc1000": "fc1000"})
        with torch.no_grad():
            outs["prob"] = torch.softmax(model(torch.from_numpy(io["data"])), dim=1)
        return _pair(outs, io)
    return run


def _mcn_two_stream(exact: bool) -> Outputs:
    import test_models_matconvnet as t

    model = set_exact(t._two_stream(), exact)
    io = np.load(IO / "mcn_2stream_256.npz")
    x1, x2 = torch.from_numpy(io["data"]), torch.from_numpy(io["data_2"])
    with torch.no_grad():
        out = model(x1, x2)
        f1, f2 = model.features(x1), model.features(x2)
    outs = {"pool5": f1, "pool5_2": f2, "prediction": out.prediction,
            "prediction_2": out.prediction_2, "Dist_prediction": out.dist_prediction}
    return _pair(outs, io)


# --- canonical classes, Caffe semantics (tests/test_models_caffe.py) -----------------------

def _caffe_canonical(npz: str, kind: str, **kw) -> Runner:
    def run(exact: bool) -> Outputs:
        import test_models_caffe as t

        from porting.models import VGG16, CaffeNet, ResNet50

        io = np.load(IO / npz)
        if kind == "resnet50":
            model = ResNet50("caffe", num_classes=io["blob/prob"].shape[1], width=8, **kw)
            t._load(model, "resnet50_narrow", model.caffe_layer_names())
            wanted = {b: f"blob/{b}" for b in model.blocks}
            wanted |= {"pool1": "blob/pool1", "pool5": "blob/pool5", "fc1000": "blob/fc1000"}
        else:
            cls, fixture = (CaffeNet, "caffenet_narrow") if kind == "caffenet" else (
                VGG16, "vgg16_narrow")
            convs = [f"conv{i}" for i in range(1, 6)] if kind == "caffenet" else [
                f"conv{i}_1" for i in range(1, 6)]
            widths, fc = t._widths(fixture, convs)
            model = cls("caffe", num_classes=io["blob/prob"].shape[1], widths=widths,
                        fc_width=fc)
            t._load(model, fixture, {n: n for n, _ in model.named_modules() if n})
            modules = dict(model.named_modules())
            wanted = {}
            for key in io.files:  # Caffe's conv/fc blobs are post-ReLU (in-place ReLU)
                if key.startswith("blob/") and key != "blob/prob":
                    name = key[5:]
                    relu = name.replace("conv", "relu", 1).replace("fc", "relu", 1)
                    wanted[relu if relu in modules else name] = key
        model = set_exact(model.eval(), exact)
        outs = _capture(model, wanted)
        with torch.no_grad():
            x = torch.from_numpy(seeded_input(io, "input/data"))
            outs["blob/prob"] = torch.softmax(model(x), dim=1)
        return _pair(outs, io)
    return run


# --- converted graphs (tests/test_convert_*.py) --------------------------------------------

_CONVERTED: dict[str, Path] = {}


def _converted(name: str, convert: Callable[[Path], list[str]], main) -> Path:
    if name not in _CONVERTED:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="fastpath-")) / f"{name}.pth"
        assert main([*convert(out), "-o", str(out), "-q"]) == 0
        _CONVERTED[name] = out
    return _CONVERTED[name]


def _graph_runner(name: str, sources: Callable[[Path], list[str]], main, npz: str,
                  conv: str | None = None) -> Runner:
    def run(exact: bool) -> Outputs:
        model = porting.load(_converted(name, sources, main), canonical=False, exact=exact)
        if conv is not None:
            model.conv = conv
        z = np.load(IO / npz)
        ref = {k: z[k] for k in z.files if not k.startswith("__")}
        if "__seed__/input/data" in z.files:
            ref["input/data"] = seeded_input(z, "input/data")
        rows, _ = compare(model, ref)
        assert len(rows) >= 5
        return {r.name: (torch.tensor(r.max_rel), np.zeros(())) for r in rows}
    return run


def _mcn_graph(model: str, npz: str) -> Runner:
    key = model.replace("/", "_")
    return _graph_runner(f"mcn_{key}", lambda out: [str(MCN / model)], mcn_main, npz)


def _caffe_sources(proto: str, weights: str) -> Callable[[Path], list[str]]:
    def sources(out: Path) -> list[str]:
        return [str(CAFFE / proto / "deploy.prototxt"), str(caffemodel(weights)),
                "--arch", "none"]
    return sources


def _caffe_graph(proto: str, weights: str, npz: str, conv: str | None = None) -> Runner:
    return _graph_runner(f"caffe_{proto}", _caffe_sources(proto, weights), caffe_main, npz,
                         conv)


#: family -> [(member, runner, documented tolerance)]; families as in README's table.
FAMILIES: dict[str, list[tuple[str, Runner, float]]] = {
    "MatConvNet CaffeNet / VGG16": [
        ("canonical caffenet", _mcn_simplenn("_caffenet", "mcn_caffenet.npz"), 1e-5),
        ("canonical caffenet 224", _mcn_simplenn("_caffenet", "mcn_caffenet_224.npz"), 1e-5),
        ("canonical vgg16", _mcn_simplenn("_vgg16", "mcn_vgg16.npz"), 1e-5),
        ("graph caffenet", _mcn_graph("caffenet_narrow/model.mat", "mcn_caffenet.npz"), 1e-4),
        ("graph caffenet pre-beta17", _mcn_graph("caffenet_narrow/model_legacy_prebeta17.mat",
                                                 "mcn_caffenet.npz"), 1e-4),
        ("graph vgg16", _mcn_graph("vgg16_narrow/model.mat", "mcn_vgg16.npz"), 1e-4),
    ],
    "MatConvNet ResNet-50": [
        ("canonical 224", _mcn_resnet("mcn_resnet50.npz"), 1e-5),
        ("canonical 227", _mcn_resnet("mcn_resnet50_227.npz"), 1e-5),
        ("graph DagNN", _mcn_graph("resnet50_narrow/model.mat", "mcn_resnet50.npz"), 1e-4),
        ("graph importer", _mcn_graph("resnet50_narrow/model_import_caffe_py.mat",
                                      "mcn_resnet50.npz"), 1e-4),
    ],
    "MatConvNet two-stream net": [
        ("canonical 256", _mcn_two_stream, 1e-5),
        ("graph 256", _mcn_graph("resnet52_2stream_narrow/model.mat", "mcn_2stream_256.npz"),
         1e-4),
    ],
    "Caffe CaffeNet / VGG16": [
        ("canonical caffenet", _caffe_canonical("caffe_caffenet.npz", "caffenet"), 1e-4),
        ("canonical caffenet odd", _caffe_canonical("caffe_caffenet_odd.npz", "caffenet"),
         1e-4),
        ("canonical vgg16", _caffe_canonical("caffe_vgg16.npz", "vgg16"), 1e-4),
        ("graph caffenet", _caffe_graph("caffenet_narrow", "caffenet_narrow",
                                        "caffe_caffenet.npz"), 1e-4),
        ("graph caffenet odd", _caffe_graph("caffenet_narrow_odd", "caffenet_narrow",
                                            "caffe_caffenet_odd.npz"), 1e-4),
        ("graph vgg16", _caffe_graph("vgg16_narrow", "vgg16_narrow", "caffe_vgg16.npz"), 1e-4),
    ],
    "Caffe ResNet-50": [
        ("canonical 224", _caffe_canonical("caffe_resnet50.npz", "resnet50"), 1e-4),
        ("canonical odd", _caffe_canonical("caffe_resnet50_odd.npz", "resnet50"), 1e-4),
        ("canonical gp", _caffe_canonical("caffe_resnet50_gp.npz", "resnet50",
                                          global_pool=True), 1e-4),
        ("graph 224", _caffe_graph("resnet50_narrow", "resnet50_narrow",
                                   "caffe_resnet50.npz"), 1e-4),
        ("graph odd", _caffe_graph("resnet50_narrow_odd", "resnet50_narrow",
                                   "caffe_resnet50_odd.npz"), 1e-4),
        ("graph gp", _caffe_graph("resnet50_narrow_gp_256x128", "resnet50_narrow",
                                  "caffe_resnet50_gp.npz"), 1e-4),
    ],
}
MEMBERS = [(family, name, run, tol) for family, members in FAMILIES.items()
           for name, run, tol in members]


def worst(outs: Outputs) -> tuple[str, float]:
    """The README's measure over one run: the tensor with the largest relative error."""
    errs = {k: (float(ours) if ref.ndim == 0 and ours.dim() == 0 else rel_err(ours, ref))
            for k, (ours, ref) in outs.items()}
    key = max(errs, key=errs.__getitem__)
    return key, errs[key]


@pytest.mark.parametrize("family,name,run,tol", MEMBERS,
                         ids=[f"{f}:{n}" for f, n, _, _ in MEMBERS])
def test_fast_path_within_family_tolerance(family: str, name: str, run: Runner,
                                           tol: float) -> None:
    key, err = worst(run(False))
    assert err <= tol, f"{family} / {name}: {key} {err:.2e} > {tol:.0e}"


def _mcn_resnet_model() -> torch.nn.Module:
    import test_models_matconvnet as t

    return t._resnet(1000)[0]


@pytest.mark.parametrize("build", ["mcn_resnet", "caffe_caffenet"])
def test_exact_is_bit_identical_to_a_never_switched_module(build: str) -> None:
    """exact=True, also after a round trip through the fast forms, is the untouched module."""
    if build == "mcn_resnet":
        model = _mcn_resnet_model().eval()
        x = torch.from_numpy(np.load(IO / "mcn_resnet50.npz")["data"])
    else:
        import test_models_caffe as t

        from porting.models import CaffeNet

        io = np.load(IO / "caffe_caffenet.npz")
        widths, fc = t._widths("caffenet_narrow", [f"conv{i}" for i in range(1, 6)])
        model = CaffeNet("caffe", num_classes=io["blob/prob"].shape[1], widths=widths,
                         fc_width=fc).eval()
        t._load(model, "caffenet_narrow", {n: n for n, _ in model.named_modules() if n})
        x = torch.from_numpy(seeded_input(io, "input/data"))
    with torch.no_grad():
        untouched = model(x)
        assert is_exact(model)
        fast = fast_inference(model)(x)
        assert not is_exact(model)
        again = exact_inference(model)(x)
    assert torch.equal(again, untouched)
    # The switch does switch where there is a BatchNorm; CaffeNet's fast form (in-place
    # ReLUs) computes the same values.
    assert torch.equal(fast, untouched) == (build == "caffe_caffenet")


@pytest.mark.parametrize("fixture", ["caffe_resnet50", "two_stream"])
def test_load_exact_is_bit_identical_to_the_graph_as_built(fixture: str, ckpts) -> None:
    """``porting.load(exact=True)`` is the graph with every layer in its source form."""
    from porting.checkpoint import load_checkpoint
    from porting.loading import model_from_checkpoint

    path = ckpts[fixture]
    built = model_from_checkpoint(load_checkpoint(path))
    assert isinstance(built, GraphModule) and built.exact
    exact = porting.load(path, exact=True)
    fast = porting.load(path)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224) * 50
    feeds = {v: x for v in built.inputs if v.startswith("data")}
    with torch.no_grad():
        a, b, c = (m(**feeds, outputs=["pool5"])["pool5"] for m in (built, exact, fast))
    assert torch.equal(a, b)
    assert not fast.exact and not torch.equal(a, c)


def test_fast_forms_match_float64() -> None:
    """The fast forms compute the same maths: float32 fast against the float64 exact run is
    within twice float32 exact's own error."""
    from conftest import assert_fp32_close

    model = _mcn_resnet_model().eval()
    x = torch.from_numpy(np.load(IO / "mcn_resnet50.npz")["data"])
    with torch.no_grad():
        ref32 = model(x)
        ref64 = model.double()(x.double())
        model.float()
        got = fast_inference(model)(x)
    assert_fp32_close(got, ref32, ref64)


def test_fast_graph_keeps_requested_and_given_vars() -> None:
    """An in-place ReLU never overwrites a var the caller asked for or fed."""
    path = _converted("mcn_resnet50_narrow_model.mat",
                      lambda out: [str(MCN / "resnet50_narrow/model.mat")], mcn_main)
    exact, fast = porting.load(path, exact=True), porting.load(path)
    x = torch.randn(1, 3, 224, 224) * 50
    with torch.no_grad():
        want = ["conv1x", "conv1xxx", "res2a_branch2ax", "res2ax", "pool5"]
        a, b = exact(data=x, outputs=want), fast(data=x.clone(), outputs=want)
        given = a["conv1x"].clone()
        fast(conv1x=given, outputs=["pool1"])
    assert torch.equal(given, a["conv1x"])
    for k in want:
        assert rel_err(b[k], a[k].numpy()) < 1e-5, k


def _caffe_resnet_graph() -> Path:
    return _converted("caffe_resnet50_narrow", _caffe_sources("resnet50_narrow",
                                                              "resnet50_narrow"), caffe_main)


def test_fast_caffe_graph_fuses_bn_scale_and_sums_in_place_safely() -> None:
    """In a converted Caffe ResNet every BatchNorm -> Scale pair runs as one pass and the
    shortcut sums reuse a private bottom; a var the caller asks for (a BatchNorm's own
    output, a shared shortcut, a sum's bottom) or feeds is still computed and left intact,
    and the whole stays within float32 noise of a float64 exact run."""
    from conftest import assert_fp32_close

    path = _caffe_resnet_graph()
    exact, fast = porting.load(path, exact=True), porting.load(path)
    n_bn = sum(layer["op"] == "caffe_bn" for layer in fast.layers)
    assert n_bn > 0 and len(fast._bn_scale) == n_bn
    assert any(k == 1 for k in fast._private.values())  # a sum into its second bottom
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 50
    want = ["conv1@bn_conv1", "res2a", "res2a_branch2c", "res2b", "prob"]
    with torch.no_grad():
        a = exact(data=x, outputs=want)
        b = fast(data=x.clone(), outputs=want)
        given = b["res2a"].clone()
        c = fast(res2a=given, outputs=["res2b"])
        exact64 = porting.load(path, exact=True).double()
        ref64 = exact64(data=x.double(), outputs=want)
    assert torch.equal(given, b["res2a"])
    assert torch.equal(c["res2b"], b["res2b"])
    for k in want:
        assert_fp32_close(b[k], a[k], ref64[k])


def test_fused_pair_that_cannot_run_is_one_line_naming_both_layers() -> None:
    """A Scale whose size does not fit its BatchNorm (a damaged checkpoint) fails in the fused
    pass as one GraphError naming both layers, as the exact path names its layer."""
    from porting.graph import GraphError

    path = _caffe_resnet_graph()
    exact, fast = porting.load(path, exact=True), porting.load(path)
    for model in (exact, fast):
        key = "scale_conv1/0"  # the Scale's gamma (Caffe blob 0)
        model.params[key] = torch.nn.Parameter(torch.ones(model.params[key].numel() + 1))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad(), pytest.raises(GraphError) as fused:
        fast(data=x)
    with torch.no_grad(), pytest.raises(GraphError) as plain:
        exact(data=x)
    assert "'bn_conv1'" in str(fused.value) and "'scale_conv1'" in str(fused.value)
    assert "'scale_conv1'" in str(plain.value)
    assert "\n" not in str(fused.value)


def agreement_table() -> str:
    """Markdown: worst ``max|ours-ref|/max|ref|`` per family, exact and fast."""
    lines = ["| fixture family | member | exact | fast |", "|---|---|---|---|"]
    for family, members in FAMILIES.items():
        per = {True: 0.0, False: 0.0}
        for name, run, _tol in members:
            errs = {exact: worst(run(exact))[1] for exact in (True, False)}
            lines.append(f"| {family} | {name} | {errs[True]:.2e} | {errs[False]:.2e} |")
            per = {k: max(v, errs[k]) for k, v in per.items()}
        lines.append(f"| **{family}** | worst | **{per[True]:.2e}** | **{per[False]:.2e}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    torch.manual_seed(0)
    print(agreement_table())
