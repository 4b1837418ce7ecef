"""Checkpoint format, porting.load, and the graph runner's contract."""

from __future__ import annotations

import os

import pytest
import torch

import porting
from porting.checkpoint import CheckpointError, atomic_write, make_checkpoint, save_checkpoint
from porting.graph import GraphError, GraphModule
from porting.models import SiameseReID, build_model


def _tiny_spec() -> dict:
    return {"name": "siamese", "trunk": {"name": "resnet50",
            "kwargs": {"semantics": "matconvnet", "num_classes": None, "width": 4}},
            "kwargs": {"feat_dim": 64, "num_ids": 7, "dropout": 0.9}}


def test_canonical_round_trip(tmp_path) -> None:
    model = build_model(_tiny_spec()).eval()
    assert isinstance(model, SiameseReID)
    path = tmp_path / "m.pth"
    pre = {"input_size": [256, 256], "mean": [105.692, 99.1345, 97.9152], "colour": "RGB"}
    save_checkpoint(path, make_checkpoint(model.state_dict(), arch=_tiny_spec(),
                                          preprocess=pre, recipe="market-matconvnet"))
    loaded = porting.load(path)
    x = torch.randn(2, 3, 224, 224)
    assert torch.equal(loaded.embed(x), model.embed(x))
    assert loaded.preprocess_spec == pre and loaded.recipe == "market-matconvnet"
    assert not loaded.training


def test_load_rejects_foreign_and_future_files(tmp_path) -> None:
    bare = tmp_path / "bare.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bare)
    with pytest.raises(CheckpointError, match="bare state_dict"):
        porting.load(bare)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="junk.pth"):
        porting.load(junk)
    future = make_checkpoint({}, arch=_tiny_spec())
    future["version"] = 99
    save_checkpoint(tmp_path / "future.pth", future)
    with pytest.raises(CheckpointError, match="newer"):
        porting.load(tmp_path / "future.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        porting.load(tmp_path / "missing.pth")


def test_load_never_unpickles_code(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"format": "reid-porting", "version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError):
        porting.load(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path) -> None:
    def boom(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.pth", boom)
    assert list(tmp_path.iterdir()) == []


def _two_conv_graph() -> tuple[dict, dict]:
    layers = [
        {"name": "c1", "type": "dagnn.Conv", "op": "conv", "inputs": ["a"], "outputs": ["fa"],
         "attrs": {"pad": [1, 1, 1, 1]}, "params": {"weight": "w", "bias": "b"}},
        {"name": "c1_2", "type": "dagnn.Conv", "op": "conv", "inputs": ["b"], "outputs": ["fb"],
         "attrs": {"pad": [1, 1, 1, 1]}, "params": {"weight": "w", "bias": "b"}},
        {"name": "sq", "type": "dagnn.Square", "op": "square_diff", "inputs": ["fa", "fb"],
         "outputs": ["d"], "attrs": {}, "params": {}},
    ]
    graph = {"framework": "matconvnet", "inputs": ["a", "b"], "outputs": ["d"], "layers": layers}
    return graph, {"w": torch.randn(4, 3, 3, 3), "b": torch.randn(4)}


def test_graph_shares_parameters_and_returns_named_vars() -> None:
    graph, params = _two_conv_graph()
    g = GraphModule(graph, params)
    assert len(list(g.parameters())) == 2  # one tensor used by both streams
    a, b = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
    out = g(a, b, outputs=["fa", "d"])
    ref = torch.nn.functional.conv2d(a, params["w"], params["b"], padding=1)
    assert torch.allclose(out["fa"], ref, atol=1e-6)
    assert torch.allclose(g(a=a, b=b), out["d"])
    with pytest.raises(GraphError, match="unknown variable"):
        g(a, b, outputs=["nope"])


def test_graph_errors_name_the_layer() -> None:
    graph, params = _two_conv_graph()
    del params["b"]
    with pytest.raises(GraphError, match="c1.*'b'"):
        GraphModule(graph, params)
    graph, params = _two_conv_graph()
    graph["layers"][0]["op"] = "warp_drive"
    with pytest.raises(GraphError, match="c1.*warp_drive"):
        GraphModule(graph, params)
    graph, params = _two_conv_graph()
    g = GraphModule(graph, params)
    with pytest.raises(GraphError, match="c1.*dagnn.Conv.*channels"):
        g(torch.randn(1, 5, 5, 5), torch.randn(1, 3, 5, 5))


def test_graph_layers_never_reuse_another_graphs_module() -> None:
    """A layer's attributes decide its module: a fresh attrs dict (which CPython may place
    at a freed dict's address) must never get the module built for another one."""
    from porting.graph import OPS

    x = torch.randn(1, 1, 12, 12)
    for i in range(30):
        k = 2 + i % 3
        attrs = {"method": "max", "kernel": [k, k], "stride": [k, k]}
        y = OPS["caffe_pool"]([x], attrs, {}, False)[0]
        assert y.shape[-1] == -(-(12 - k) // k) + 1, f"kernel {k}"
        del attrs
