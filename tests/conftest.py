"""Shared test helpers: fixture paths and the relative-error measure of the issues."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

# A shell that starts the suite in the background (no job control) leaves SIGINT ignored, and
# an ignored signal is inherited across exec: the commands the tests interrupt would then
# never see their Ctrl-C. Give this process a handler; its children start with the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


FIXTURES = Path(__file__).resolve().parent / "fixtures"

# `make test-matrix` runs the suite with oneDNN disabled too: float32 results then come from
# other kernels, which every tolerance here must absorb (see assert_fp32_close).
if os.environ.get("REID_PORTING_MKLDNN") == "0":
    torch.backends.mkldnn.enabled = False


def rel_err(ours: np.ndarray | torch.Tensor, ref: np.ndarray) -> float:
    """``max|ours - ref| / max|ref|`` over one tensor (the measure every issue reports)."""
    if isinstance(ours, torch.Tensor):
        ours = ours.detach().cpu().numpy()
    ours = np.asarray(ours, dtype=np.float64).reshape(np.shape(ref))
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


CONVERSIONS = {  # name -> (converter module, sources under FIXTURES, options)
    "two_stream": ("matconvnet", ["matconvnet/resnet52_2stream_narrow/model.mat"], []),
    "mcn_caffenet": ("matconvnet", ["matconvnet/caffenet_narrow/model.mat"], ["--arch", "none"]),
    "caffe_caffenet": ("caffe", ["caffe/caffenet_narrow/deploy.prototxt",
                                 "caffe/caffenet_narrow/weights.caffemodel"], ["--arch", "none"]),
    "caffe_resnet50": ("caffe", ["caffe/resnet50_narrow/deploy.prototxt",
                                 "caffe/resnet50_narrow/weights.caffemodel"], ["--arch", "none"]),
}


class Converted:
    """Fixture nets converted through the CLIs, each once per session, on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __getitem__(self, name: str) -> Path:
        import importlib

        path = self.folder / f"{name}.pth"
        if not path.exists():
            module, sources, options = CONVERSIONS[name]
            convert = importlib.import_module(f"porting.converters.{module}").main
            args = [str(FIXTURES / s) for s in sources] + ["-o", str(path), "-q", *options]
            assert convert(args) == 0
        return path


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> Converted:
    return Converted(tmp_path_factory.mktemp("converted"))


#: Float32 results may be this many times PyTorch's own float32 error against float64.
FP32_C = 2.0


def assert_fp32_close(got32, ref32, ref64, tol: float = 1e-5) -> float:
    """Machine-independent float32 check: ``got32``'s error against the float64 run ``ref64``
    is within ``max(tol, FP32_C * e)``, ``e`` being ``ref32``'s own (PyTorch float32 vs
    float64) error. Returns ``got32``'s error against ``ref64``."""
    ref64 = ref64.detach().cpu().numpy() if isinstance(ref64, torch.Tensor) else ref64
    err, own = rel_err(got32, ref64), rel_err(ref32, ref64)
    assert err <= max(tol, FP32_C * own), (err, own, tol)
    return err


def refused(result: tuple[int, str, Path], *names: str) -> str:
    """A converter run ``(exit status, stderr, output path)`` that refused its input: exit 2,
    exactly one ``error:`` line naming everything in ``names``, no output or temp file."""
    rc, err, out = result
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "Traceback" not in err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.suffix == ".tmp"]
    return lines[0]


def seeded_input(io: np.lib.npyio.NpzFile, name: str, batch: int | None = 1) -> np.ndarray:
    """Regenerate a Caffe fixture input from its recorded seed and check its digest.

    The shared Caffe fixtures were fed ``RandomState(seed).uniform(-128, 128, shape)`` in
    float32; the trimmed copies keep the seed, the shape and the SHA-256 of the stored array.
    """
    import hashlib

    shape = tuple(int(d) for d in io[f"__shape__/{name}"])
    full = np.random.RandomState(int(io[f"__seed__/{name}"])).uniform(-128, 128, shape)
    n = shape[0] if batch is None else batch
    x = full.astype(np.float32)[:n]
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
    assert digest == str(io[f"__sha256__/{name}"]), f"regenerated {name} differs from the fixture"
    return x


def _v1_caffemodel_path() -> Path:
    import tempfile

    want = (FIXTURES / "caffe" / "caffenet_narrow_v1" / "weights.caffemodel.sha256")
    digest = want.read_text().strip()
    return Path(tempfile.gettempdir()) / f"reid-porting-v1-{digest[:16]}" / "weights.caffemodel"


V1_CAFFEMODEL = _v1_caffemodel_path()


def caffemodel(folder: str) -> Path:
    """The caffemodel of a Caffe fixture folder (the V1 one is rebuilt outside the tree)."""
    if folder == "caffenet_narrow_v1":
        return V1_CAFFEMODEL
    return FIXTURES / "caffe" / folder / "weights.caffemodel"


def _rebuild_v1_caffemodel() -> None:
    """The legacy V1 caffemodel of caffenet_narrow_v1 holds exactly the V2 file's values, so
    the repository keeps it without its blob data (1 KB instead of 3.8 MB): its blobs are
    refilled from the V2 caffemodel into a temporary folder (the tests never write into the
    source tree), and the result must be byte-identical to the file Caffe wrote (SHA-256
    recorded next to it)."""
    import hashlib
    import os

    from porting.converters.caffe import proto as cp

    folder = FIXTURES / "caffe" / "caffenet_narrow_v1"
    target = V1_CAFFEMODEL
    want = (folder / "weights.caffemodel.sha256").read_text().strip()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == want:
        return
    v1 = cp.NetParameter()
    v1.ParseFromString((folder / "weights.nodata.caffemodel").read_bytes())
    v2 = cp.NetParameter()
    v2.ParseFromString((FIXTURES / "caffe" / "caffenet_narrow" / "weights.caffemodel")
                       .read_bytes())
    source = {layer.name: layer for layer in v2.layer}
    for layer in v1.layers:
        for i, blob in enumerate(layer.blobs):
            blob.data.extend(source[layer.name].blobs[i].data)
    data = v1.SerializeToString()
    assert hashlib.sha256(data).hexdigest() == want, "rebuilt V1 caffemodel differs from Caffe's"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def pytest_sessionstart(session) -> None:
    _rebuild_v1_caffemodel()
