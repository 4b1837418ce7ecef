"""The graph ops of issue 21's Caffe types: each registered unit's schema accepts a valid
layer and refuses a bad attribute (one line naming the field), and the graph runner computes
the source's float64 formula (``tests/caffe_refs.py``) at odd sizes with batch 2."""

from __future__ import annotations

import caffe_refs as ref
import numpy as np
import pytest
import torch

from porting.checkpoint import make_checkpoint
from porting.checkpoint_schema import CheckpointError, check_schema
from porting.graph import GraphModule

from conftest import rel_err

R = np.random.default_rng(5)


def a(*shape: int, positive: bool = False) -> np.ndarray:
    v = R.standard_normal(shape)
    return np.abs(v) + 0.1 if positive else v


X = a(2, 6, 5, 7)
M = a(2, 6, 3, 4)
P = {"w_prelu": a(6), "w_deconv": a(6, 2, 3, 3), "b6": a(6), "s6": a(6, positive=True),
     "emb": a(5, 4), "b4": a(4), "bn_s": a(1, 6), "bn_b": a(1, 6), "bn_m": a(1, 6),
     "bn_v": a(1, 6, positive=True)}
_, MASK = ref.max_pool_mask(X, 2, 2, 0)

CASES = {  # name -> (op, attrs, input arrays, params {slot: key}, float64 formula, bad attr)
    "prelu": ("prelu", {}, [X], {"weight": "w_prelu"}, lambda: ref.prelu(X, P["w_prelu"]),
              None),
    "elu": ("elu", {"alpha": 0.5}, [X], {}, lambda: ref.elu(X, 0.5), ("alpha", "x")),
    "absval": ("absval", {}, [X], {}, lambda: np.abs(X), None),
    "bnll": ("bnll", {}, [X], {}, lambda: ref.bnll(X), None),
    "exp": ("caffe_exp", {"base": 3.0, "scale": 0.5, "shift": 0.2}, [X], {},
            lambda: ref.exp_layer(X, 3, 0.5, 0.2), ("base", -2.0)),
    "log": ("caffe_log", {"base": 2.0, "scale": 1.5, "shift": 0.5}, [np.abs(X) + 0.1], {},
            lambda: ref.log_layer(np.abs(X) + 0.1, 2, 1.5, 0.5), ("scale", float("nan"))),
    "threshold": ("threshold", {"threshold": 0.3}, [X], {}, lambda: (X > 0.3) * 1.0,
                  ("threshold", None)),
    "power": ("power", {"power": 2.0, "scale": 0.0, "shift": 3.0}, [X], {},
              lambda: np.full(X.shape, 9.0), None),
    "deconv": ("deconv", {"stride": [2, 2], "pad": [1, 1], "dilation": [1, 2], "groups": 3},
               [X], {"weight": "w_deconv", "bias": "b6"},
               lambda: ref.deconv(X, P["w_deconv"], P["b6"], (2, 2), (1, 1), (1, 2), 3),
               ("groups", 0)),
    "crop": ("crop", {"axis": 2, "offset": [1, 2]}, [X, M], {},
             lambda: X[:, :, 1:4, 2:6], ("offset", [1, 2, 3, 4, 5])),
    "permute": ("permute", {"order": [0, 3, 1]}, [X], {}, lambda: X.transpose(0, 3, 1, 2),
                ("order", [0, 9])),
    "tile": ("tile", {"axis": 2, "tiles": 3}, [X], {}, lambda: ref.tile(X, 2, 3),
             ("tiles", 0)),
    "shuffle": ("shuffle_channel", {"group": 2}, [X], {}, lambda: ref.shuffle_channel(X, 2),
                ("group", 0)),
    "reshape": ("reshape", {"shape": [0, -1], "axis": 1, "num_axes": 2}, [X], {},
                lambda: X.reshape(2, 6, 5, 7), ("num_axes", -2)),
    "reshape-tail": ("reshape", {"shape": [-1], "axis": 2}, [X], {},
                     lambda: X.reshape(2, 6, 35), None),
    "reduction": ("reduction", {"operation": "ASUM", "axis": 1, "coeff": 2.0}, [X], {},
                  lambda: ref.reduction(X, "ASUM", 1, 2.0), ("operation", "MAX")),
    "argmax": ("argmax", {"top_k": 2, "out_max_val": True, "axis": 1}, [X], {},
               lambda: ref.argmax(X, 2, True, 1), ("top_k", 0)),
    "embed": ("embed", {}, [np.array([[0.0, 4.0, 2.0], [1.0, 1.0, 3.0]])],
              {"weight": "emb", "bias": "b4"},
              lambda: P["emb"][[[0, 4, 2], [1, 1, 3]]] + P["b4"], None),
    "mvn": ("mvn", {"across_channels": True, "eps": 1e-6}, [X], {},
            lambda: ref.mvn(X, True, True, 1e-6), ("eps", -1.0)),
    "normalize": ("ssd_normalize", {"across_spatial": False, "eps": 1e-6}, [X],
                  {"scale": "s6"}, lambda: ref.normalize(X, P["s6"], False, 1e-6),
                  ("across_spatial", 1)),
    "fork_bn": ("fork_bn", {"eps": 1e-4}, [X],
                {"scale": "bn_s", "shift": "bn_b", "mean": "bn_m", "variance": "bn_v"},
                lambda: (P["bn_s"].reshape(1, 6, 1, 1) * (X - P["bn_m"].reshape(1, 6, 1, 1))
                         / np.sqrt(P["bn_v"].reshape(1, 6, 1, 1) + 1e-4)
                         + P["bn_b"].reshape(1, 6, 1, 1)), ("eps", "x")),
    "axpy": ("axpy", {}, [a(2, 6, 1, 1), X, M[:, :, :1, :1] + X], {}, None, None),
    "interp": ("interp", {"zoom_factor": 2, "pad_beg": -1}, [X], {},
               lambda: ref.interp(X, 7, 11, -1, 0), ("pad_beg", 1)),
    "interp-like": ("interp", {}, [X, a(1, 1, 9, 4)], {}, lambda: ref.interp(X, 9, 4), None),
    "unpool": ("max_unpool", {"scale": [2, 2], "pad_out": [True, True]}, [M, MASK], {},
               lambda: ref.unpool(M, MASK, 5, 7), ("scale", [0, 2])),
    "upsample": ("upsample_nearest", {"scale": 2}, [X], {},
                 lambda: X.repeat(2, axis=2).repeat(2, axis=3), ("scale", 0)),
    "stochastic": ("caffe_stochastic_pool", {"kernel": [3, 3], "stride": [2, 2]}, [np.abs(X)],
                   {}, lambda: ref.stochastic_test(np.abs(X), 3, 2), ("kernel", [0, 3])),
}


def _graph(op: str, attrs: dict, n_in: int, params: dict, n_out: int = 1) -> dict:
    ins = [f"in{i}" for i in range(n_in)]
    outs = [f"out{i}" for i in range(n_out)]
    return {"framework": "caffe", "inputs": ins, "outputs": outs,
            "layers": [{"name": "l", "type": op, "op": op, "inputs": ins, "outputs": outs,
                        "attrs": attrs, "params": params}]}


def _sd(params: dict) -> dict:
    return {f"params.{k}": torch.from_numpy(P[k]) for k in params.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_runs_the_source_formula(name: str) -> None:
    op, attrs, inputs, params, formula, _ = CASES[name]
    graph = _graph(op, attrs, len(inputs), params)
    check_schema(make_checkpoint(_sd(params), graph=graph))
    net = GraphModule(graph, {k[7:]: v for k, v in _sd(params).items()}).eval()
    with torch.no_grad():
        y = net(*[torch.from_numpy(v) for v in inputs]).numpy()
    expect = formula() if formula else inputs[0] * inputs[1] + inputs[2]
    assert y.shape == expect.shape
    assert rel_err(y, expect) <= 1e-10, rel_err(y, expect)


@pytest.mark.parametrize("name", sorted(k for k, v in CASES.items() if v[5]))
def test_op_schema_refuses_a_bad_attribute(name: str) -> None:
    op, attrs, inputs, params, _, (field, value) = CASES[name]
    graph = _graph(op, {**attrs, field: value}, len(inputs), params)
    with pytest.raises(CheckpointError, match=rf"\.attrs\.{field}: "):
        check_schema(make_checkpoint(_sd(params), graph=graph))


def test_pool_mask_op_has_two_outputs() -> None:
    graph = _graph("caffe_pool_mask", {"kernel": [2, 2], "stride": [2, 2], "method": "max"}, 1,
                   {}, n_out=2)
    check_schema(make_checkpoint({}, graph=graph))
    out = GraphModule(graph, {}).eval()(torch.from_numpy(X))
    top, mask = ref.max_pool_mask(X, 2, 2, 0)
    assert np.array_equal(out["out0"].numpy(), top) and np.array_equal(out["out1"].numpy(), mask)


@pytest.mark.parametrize("name,why", [("fork_bn", "batch statistics"),
                                      ("stochastic", "samples at random")])
def test_train_time_forms_are_refused(name: str, why: str) -> None:
    op, attrs, inputs, params, _, _ = CASES[name]
    net = GraphModule(_graph(op, attrs, 1, params), {k[7:]: v for k, v in _sd(params).items()})
    net.train()
    with pytest.raises(ValueError, match=why):
        net(torch.from_numpy(inputs[0]))
