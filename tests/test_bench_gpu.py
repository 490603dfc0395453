"""The GPU benchmark on the CPU: every contender must compute workload W, and the timing loops run.

``benchmarks/bench_gpu.py`` runs here on the CuPy stand-in (tests/cuda_host/cupy_standin.py:
NumPy "device arrays", the unchanged ``.cu`` kernels compiled for the CPU, events on the host
clock): torch on CPU tensors (DLPack), ``scipy.ndimage`` for ``cupyx.scipy.ndimage``, sas_fast's
public call and its fused kernel through the CUDA backend's own launch code.  Outputs are held to
the CPU comparison's checks (``benchmarks.baselines.check``): sas_fast bit for bit, torch and
cupyx to the reference geometry outside the mask and the reference's noise strength inside it,
the copy to the input.  A GPU session then measures baselines known to do the same work.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_gpu
from benchmarks.baselines import Contender, check, reference_outputs
from benchmarks.workloads import make_workload
from sas_fast import backends
from sas_fast.backends import cuda
from tests.cuda_host import cupy_standin, host_backend

pytest.importorskip("torch", reason="torch is not installed: the torch GPU baseline is not checked")
scipy_ndimage = pytest.importorskip("scipy.ndimage")


@pytest.fixture
def cp(monkeypatch):
    """The CuPy stand-in as ``cupy`` for one test (sas_fast's CUDA backend included)."""
    if host_backend.compiler() is None:
        pytest.skip("g++ is not installed: the stand-in has no kernels to run")
    monkeypatch.setitem(sys.modules, "cupy", cupy_standin)
    # fresh registry caches for the test: what it loads through the stand-in must not outlive it
    for cache in ("_loaded", "_failed"):
        monkeypatch.setattr(backends, cache, {k: v for k, v in getattr(backends, cache).items() if k != "cupy"})
    monkeypatch.setattr(cuda, "_modules", {})
    monkeypatch.setitem(bench_gpu.CONTENDERS, "cupyx", dataclasses.replace(
        bench_gpu.CONTENDERS["cupyx"], build=functools.partial(bench_gpu.cupyx_pipeline, ndimage=scipy_ndimage)
    ))  # fmt: skip
    return cupy_standin


@pytest.fixture(scope="module", params=["W", "float32"])
def workload(request):
    wl = make_workload(request.param, n=3)
    return wl, reference_outputs(wl)


def _held_to(compares: str) -> Contender:
    return Contender(key="gpu", label="GPU contender on the CPU", threads=1, build=None, compares=compares)


@pytest.mark.parametrize(
    ("name", "compares"),
    [("sas_fast", "exact"), ("sas_fast-kernel", "exact"), ("torch", "geometry"), ("cupyx", "geometry"), ("copy", "copy")],
)
def test_gpu_contender_computes_the_workload(cp, workload, name, compares):
    wl, reference = workload
    assert bench_gpu.SIGMA == float(wl.params.sigma[0])  # the baselines hard-code W's sigma
    batch = bench_gpu.plan_batch(cp.asarray(wl.images), cp.asarray(wl.masks), wl.params, wl.seed)
    out = tuple(cp.asarray(o) for o in wl.empty_outputs())
    bench_gpu.CONTENDERS[name].build(cp, out)(batch)
    assert check(_held_to(compares), wl, tuple(cp.asnumpy(o) for o in out), reference) == []


def test_the_check_fails_a_baseline_that_skips_the_noise(cp, workload, monkeypatch):
    wl, reference = workload
    batch = bench_gpu.plan_batch(cp.asarray(wl.images), cp.asarray(wl.masks), wl.params, wl.seed)
    out = tuple(cp.asarray(o) for o in wl.empty_outputs())
    monkeypatch.setattr(cp.random, "standard_normal", lambda size, dtype: cp.zeros(size, dtype))
    bench_gpu.CONTENDERS["cupyx"].build(cp, out)(batch)
    problems = check(_held_to("geometry"), wl, tuple(cp.asnumpy(o) for o in out), reference)
    assert any(p.startswith("noise:") for p in problems)


def test_bench_config_times_rows_on_the_host(cp, monkeypatch):
    """One configuration end to end: batches made by the benchmark, warm-up, the exactness check,
    timing, scaling of the contender timed on fewer images, ratios."""
    monkeypatch.setitem(bench_gpu.CONTENDERS, "cupyx", dataclasses.replace(bench_gpu.CONTENDERS["cupyx"], max_images=2))
    rows, exact = bench_gpu.bench_config(cp, 5, 48, "uint8", 2, list(bench_gpu.CONTENDERS))
    by = {row.contender: row for row in rows}
    assert set(by) == set(bench_gpu.CONTENDERS) and exact
    assert by["copy"].pct_ceiling == 100.0 and by["sas_fast"].ratio_to_sas == 1.0
    for row in rows:
        assert row.config == "5x48^2 uint8" and 0 < row.min_ms <= row.median_ms <= row.max_ms and row.first_call_ms > 0
        assert row.mpix_s == pytest.approx(5 * 48 * 48 / 1e6 / (row.median_ms / 1e3))
    assert "timed on 2 images, scaled to 5" in by["cupyx"].note and "scaled" not in by["torch"].note


def test_launch_sweep_restores_the_knobs_and_labels_its_rows(cp, monkeypatch):
    """The sweep: one row per setting and dtype with the kernel's registers, knobs restored."""
    real = cuda._kernel

    def reporting(name, device_id):
        kernel = real(name, device_id)
        kernel.num_regs, kernel.local_size_bytes = 99, 0  # what CuPy reports of a compiled kernel
        return kernel

    monkeypatch.setattr(cuda, "_kernel", reporting)
    before = cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS
    rows = bench_gpu.sweep_launch_knobs(cp, 1, n=2, size=24)
    assert (cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS) == before
    assert len(rows) == len(bench_gpu.SWEEP) * len(bench_gpu.DTYPES)
    assert rows[0].contender == "kernel RUN_BYTES={} BLOCK_THREADS={} MIN_BLOCKS={}".format(*bench_gpu.SWEEP[0])
    assert all(r.median_ms > 0 and r.note.startswith("99 registers") for r in rows)



def test_main_writes_the_json_that_gpu_check_summarises(cp, tmp_path, capsys):
    """``bench_gpu.main`` end to end on a small configuration, then the summary of
    benchmarks/gpu_check.sh (its embedded Python) read from the JSON the benchmark wrote."""
    path = tmp_path / "bench_gpu.json"
    assert bench_gpu.main(["--configs", "4x40", "--repeats", "1", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["exact"] and {r["config"] for r in data["rows"]} == {"4x40^2 uint8", "4x40^2 float32"}
    assert "GPU: CuPy stand-in (CPU)" in capsys.readouterr().out
    script = (Path(bench_gpu.__file__).parent / "gpu_check.sh").read_text()
    summary = script.split("<<'EOF'", 1)[1].split("\nEOF\n", 1)[0].split("\n", 1)[1]
    done = subprocess.run([sys.executable, "-", str(path)], input=summary, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "== summary on CuPy stand-in (CPU) (sas_fast == reference: True) ==" in lines
    assert sum(line.startswith("4x40^2 ") for line in lines) == 2


def test_configs_option_names_bad_input():
    with pytest.raises(SystemExit):
        bench_gpu.main(["--configs", "256by512"])
    assert bench_gpu._configs("256x512,64x1024") == [(256, 512), (64, 1024)]
