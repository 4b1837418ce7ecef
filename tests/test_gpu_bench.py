"""``bench/gpu.py --device cpu --quick``: the prepared GPU run works end to end on the CPU, so
that the first GPU machine runs it unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_quick_on_cpu(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu",
                           "--quick", "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    results = json.loads((tmp_path / "gpu.json").read_text())
    failed = {k: v.get("error") for k, v in results["parts"].items() if "error" in v}
    assert proc.returncode == 0 and not failed, (failed, proc.stderr[-2000:])
    parts = results["parts"]
    assert set(parts) == {"agreement", "throughput", "extraction", "training", "evaluation"}
    # fp32 on this device (exact, fast, channels_last) agrees with the float64 run
    fp32 = [r for r in parts["agreement"]["rows"] if r["within"] is not None]
    assert {r["family"] for r in fp32} == {"MatConvNet CaffeNet", "Caffe CaffeNet"}
    assert {r["mode"] for r in fp32} == {"fp32 exact", "fp32 fast", "channels_last fast"}
    assert all(r["within"] for r in fp32), fp32
    amp = [r for r in parts["agreement"]["rows"] if r["within"] is None]
    assert [r["mode"] for r in amp] == ["AMP bf16 features"]
    assert 0 < amp[0]["worst"] < 0.5 and 0 <= amp[0]["rank1"] <= 100
    assert all(r["ratio"] > 0 for r in parts["throughput"]["rows"])
    assert parts["training"]["smoke"]["bit_identical"], parts["training"]["smoke"]
    assert parts["evaluation"]["subset_same_as_cpu"]
    table = (tmp_path / "gpu.md").read_text()
    for heading in ("## 1. Agreement", "## 2. Throughput", "## 3. Extraction path",
                    "## 4. Training", "## 5. Evaluation"):
        assert heading in table
