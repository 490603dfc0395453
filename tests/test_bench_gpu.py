"""The GPU benchmark's contenders, run on the CPU: each must compute workload W.

``benchmarks/bench_gpu.py`` writes its contenders against an array module ``cp``.  Here NumPy
stands in for CuPy: torch runs on CPU tensors (DLPack from NumPy), ``scipy.ndimage`` stands in for
``cupyx.scipy.ndimage``, and the fused CUDA kernel runs as host C++ (``tests/cuda_host``) on the
benchmark's own prebuilt plans.  Their outputs are held to the CPU comparison's checks
(``benchmarks.baselines.check``): the kernel bit for bit, torch and cupyx to the reference geometry
outside the mask and the reference's noise strength inside it, the copy to the input.  A GPU
session then measures baselines known to do the same work.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import bench_gpu
from benchmarks.baselines import Contender, check, reference_outputs
from benchmarks.workloads import make_workload
from sas_fast.backends import cuda

pytest.importorskip("torch", reason="torch is not installed: the torch GPU baseline is not checked")
scipy_ndimage = pytest.importorskip("scipy.ndimage")

_rng = np.random.default_rng(7)


class _HostEvent:
    """``cupy.cuda.Event`` on the host clock."""

    def record(self) -> None:
        self.at = time.perf_counter()

    def synchronize(self) -> None:
        pass


#: The calls of ``cupy`` that bench_gpu.py makes, answered by NumPy.
NUMPY_AS_CUPY = SimpleNamespace(
    uint8=np.uint8,
    float32=np.float32,
    clip=np.clip,
    where=np.where,
    rint=np.rint,
    copyto=np.copyto,
    empty=np.empty,
    arange=np.arange,
    asarray=np.asarray,
    asnumpy=np.asarray,
    random=SimpleNamespace(
        standard_normal=_rng.standard_normal,
        random=lambda size, dtype: _rng.random(size, dtype=dtype),
        randint=lambda low, high, size, dtype: _rng.integers(low, high, size=size, dtype=dtype),
    ),
    cuda=SimpleNamespace(
        Event=_HostEvent,
        get_elapsed_time=lambda start, end: (end.at - start.at) * 1e3,
        Device=lambda: SimpleNamespace(id=0, synchronize=lambda: None),
    ),
    get_default_memory_pool=lambda: SimpleNamespace(free_all_blocks=lambda: None),
)


@pytest.fixture(scope="module", params=["W", "float32"])
def workload(request):
    wl = make_workload(request.param, n=3)
    return wl, reference_outputs(wl)


def _held_to(compares: str) -> Contender:
    return Contender(key="gpu", label="GPU contender on the CPU", threads=1, build=None, compares=compares)


@pytest.mark.parametrize(
    ("name", "compares"),
    [("torch", "geometry"), ("cupyx", "geometry"), ("copy", "copy"), ("sas_fast-kernel", "exact")],
)
def test_gpu_contender_computes_the_workload(workload, name, compares, host, monkeypatch):
    wl, reference = workload
    assert bench_gpu.SIGMA == float(wl.params.sigma[0])  # the baselines hard-code W's sigma
    batch = bench_gpu.plan_batch(wl.images, wl.masks, wl.params, wl.seed)
    out = wl.empty_outputs()
    if name == "cupyx":
        run = bench_gpu.cupyx_pipeline(NUMPY_AS_CUPY, out, ndimage=scipy_ndimage)
    else:
        monkeypatch.setattr(cuda, "augment", host.augment)  # the .cu kernel, run on the CPU
        run = bench_gpu.CONTENDERS[name].build(NUMPY_AS_CUPY, out)
    run(batch)
    assert check(_held_to(compares), wl, out, reference) == []


def test_the_check_fails_a_baseline_that_skips_the_noise(workload):
    wl, reference = workload
    batch = bench_gpu.plan_batch(wl.images, wl.masks, wl.params, wl.seed)
    out = wl.empty_outputs()
    silent = SimpleNamespace(**{**vars(NUMPY_AS_CUPY), "random": SimpleNamespace(standard_normal=np.zeros)})
    bench_gpu.cupyx_pipeline(silent, out, ndimage=scipy_ndimage)(batch)
    assert any(p.startswith("noise:") for p in check(_held_to("geometry"), wl, out, reference))


def test_bench_config_times_rows_on_the_host(monkeypatch):
    """One configuration end to end (workload made by the benchmark, warm-up, timing, scaling of
    the per-image contender timed on fewer images, ratios), the clock being the host's."""
    cupyx_on_host = functools.partial(bench_gpu.cupyx_pipeline, ndimage=scipy_ndimage)
    monkeypatch.setitem(bench_gpu.CONTENDERS, "cupyx", dataclasses.replace(bench_gpu.CONTENDERS["cupyx"], build=cupyx_on_host, max_images=2))
    rows, exact = bench_gpu.bench_config(NUMPY_AS_CUPY, 5, 48, "uint8", 2, ["torch", "cupyx", "copy"])
    by = {row.contender: row for row in rows}
    assert set(by) == {"torch", "cupyx", "copy"} and exact
    assert by["copy"].pct_ceiling == 100.0
    for row in rows:
        assert row.config == "5x48^2 uint8" and 0 < row.min_ms <= row.median_ms <= row.max_ms and row.first_call_ms > 0
        assert row.mpix_s == pytest.approx(5 * 48 * 48 / 1e6 / (row.median_ms / 1e3))
    assert "timed on 2 images, scaled to 5" in by["cupyx"].note and "scaled" not in by["torch"].note


def test_launch_sweep_restores_the_knobs_and_labels_its_rows(host, monkeypatch):
    """The sweep on the host kernels: one row per setting and dtype, knobs restored afterwards."""
    monkeypatch.setattr(cuda, "augment", host.augment)
    compiled = SimpleNamespace(num_regs=99, local_size_bytes=0)  # what CuPy reports of a kernel
    monkeypatch.setattr(cuda, "_kernel", lambda name, device_id: compiled)
    before = cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS
    rows = bench_gpu.sweep_launch_knobs(NUMPY_AS_CUPY, 1, n=2, size=24)
    assert (cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS) == before
    assert len(rows) == len(bench_gpu.SWEEP) * len(bench_gpu.DTYPES)
    assert rows[0].contender == "kernel RUN_BYTES={} BLOCK_THREADS={} MIN_BLOCKS={}".format(*bench_gpu.SWEEP[0])
    assert all(r.median_ms > 0 and r.note.startswith("99 registers") for r in rows)
