"""The benchmark harness still builds and runs (its figures are not checked)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_for_gsse(tmp_path: Path) -> None:
    """`make -C bench` builds the C generator and `run.py --quick` covers gsse."""
    for tool in ("gcc", "make", "taskset", "wrk"):
        if shutil.which(tool) is None:
            pytest.skip(f"the benchmark needs {tool!r}, which is not installed")
    subprocess.run(["make", "-C", str(BENCH), "ssegen"], check=True, timeout=60)
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--servers", "gsse"]
        + ["--json", str(out), "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,  # seven scenarios, on a machine that may be busy
    )
    assert done.returncode == 0, done.stderr
    assert "Broadcast fan-out" in done.stdout
    results = json.loads(out.read_text())["results"]["gsse"]
    assert not [key for key in results if key.endswith("_error")], results
    for kind in ("hold_callback", "hold_subscriber"):
        steps = results[kind]["steps"]
        assert [s["held"] for s in steps] == [s["wanted"] for s in steps]
    fanout = results["fanout"]["steps"]
    assert fanout[0]["delivered"] == fanout[0]["expected"] > 0
    assert results["ticks"]["loops"] == results["ticks_blocking"]["loops"] == 100
    assert results["first"]["streams_per_s"] > 0
    assert results["ping"]["rps"] > 0
    assert results["fanout1"]["steps"][0]["delivered"] > 0
    assert results["ramp"]["first_events"] == results["ramp"]["clients"]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_runs_load_runs_on_memory(tmp_path: Path) -> None:
    """`bench/runs_load.py` starts runs, follows each, and reports a row."""
    for tool in ("gcc", "make", "taskset"):
        if shutil.which(tool) is None:
            pytest.skip(f"the benchmark needs {tool!r}, which is not installed")
    subprocess.run(["make", "-C", str(BENCH), "ssegen"], check=True, timeout=60)
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "runs_load.py"), "--backends", "memory"]
        + ["--runs", "20", "--rate", "10", "--warmup", "1", "--window", "2"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())
    assert row["held"] == 20 and row["tokens_per_s"] > 0
