"""A seeded slice of the fuzz campaign (bench/fuzz/) in every test run: mutated inputs of each
format end in exit 0 or one clean line (exit 2), never a traceback, hang, leftover file,
executed payload or scored NaN (issue #11). The full campaign: bench/README.md."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Cases per format, sized so that the whole slice takes well under a minute on 2 cores
# (a MAT v7.3 case reads ~1,000 HDF5 objects; a feature case is a few milliseconds).
SLICE = {"mat7": 60, "mat73": 25, "caffemodel": 100, "prototxt": 150, "features": 150,
         "checkpoint": 60}
SEED = 11


def _fuzz_module():
    if "reid_fuzz" in sys.modules:
        return sys.modules["reid_fuzz"]
    folder = ROOT / "bench" / "fuzz"
    spec = importlib.util.spec_from_file_location("reid_fuzz", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["reid_fuzz"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    module = _fuzz_module()
    work = tmp_path_factory.mktemp("fuzz")
    return module, work, module.Seeds(work)


def test_byte_mutator_is_seeded() -> None:
    fuzz = _fuzz_module()
    data = bytes(range(256)) * 8
    a = [fuzz.mutate_bytes(random.Random(f"s:{i}"), data) for i in range(20)]
    b = [fuzz.mutate_bytes(random.Random(f"s:{i}"), data) for i in range(20)]
    assert a == b and len({m for _, m in a}) > 5 and all(d != data for d, _ in a)


@pytest.mark.parametrize("fmt", list(SLICE))
def test_fuzz_slice(fuzz, fmt: str) -> None:
    module, work, seeds = fuzz
    results = module.campaign([fmt], SLICE[fmt], SEED, work, timeout=30.0, progress=False,
                              findings=None, seeds=seeds)
    res = results[fmt]
    failures = [f for f in res.failures if f["kind"].startswith("FAIL")]
    assert not failures, "\n".join(
        f"case {f['case']}: {f['mutation']} -> {f['kind']}: {f['detail']}" for f in failures[:10])
    assert res.cases == SLICE[fmt] - res.outcomes.get("skipped", 0)
    # Both outcomes occur: the mutations neither all break nor all miss the input.
    assert res.outcomes["clean"] > 0 and res.outcomes["ok"] > 0, res.outcomes


def test_classifier_catches_what_it_must(fuzz) -> None:
    """The campaign's verdicts themselves: a traceback, a leftover file, an executed payload
    and a scored NaN are each reported as a failure."""
    module, work, seeds = fuzz
    case_dir = work / "probe"

    def run(case, main=None):
        import shutil

        shutil.rmtree(case_dir, ignore_errors=True)
        case_dir.mkdir()
        if main is not None:
            original = module._runner
            module._runner = lambda name: main
            try:
                return module.run_case(case, case_dir, seeds, 10.0)
            finally:
                module._runner = original
        return module.run_case(case, case_dir, seeds, 10.0)

    case = module.Case({"x.bin": b"x"}, "probe", "load", ["x.bin"])
    assert run(case, lambda argv: 1 // 0).kind == "FAIL:traceback"

    def leaves(argv):
        (case_dir / ".x.bin.abc.tmp").write_bytes(b"partial")
        return 2

    assert run(case, leaves).kind == "FAIL:leftover"

    def payload(argv):
        (case_dir / module.MARKER).write_text("ran")
        return 0

    assert run(case, payload).kind == "FAIL:payload"

    def two_lines(argv):
        import sys

        print("warning: something\nerror: x.bin: bad", file=sys.stderr)
        return 2

    assert run(case, two_lines).kind == "FAIL:unclean"
    import io

    import numpy as np

    q, g = seeds.query.copy(), seeds.gallery.copy()
    g[0, 0] = np.nan
    files = {}
    for name, arr in (("q.npy", q), ("g.npy", g)):
        buf = io.BytesIO()
        np.save(buf, arr)
        files[name] = buf.getvalue()
    nan_case = module.Case(files, "nan", "validate", ["q.npy", "g.npy"])
    assert run(nan_case, lambda argv: 0).kind == "FAIL:nonfinite"
    assert run(nan_case).kind == "clean"  # the real validate refuses it
