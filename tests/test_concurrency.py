"""Concurrency and resources: threads, worker processes, a shared JIT cache, no memory growth."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import sas_fast
from tests.conftest import ellipse_masks, random_image

N_JOBS = 12


def job(args):
    """One worker's call: sample ``sid`` augmented on ``backend``."""
    sid, backend = args
    rng = np.random.default_rng(sid)
    image = random_image(rng, (1, 64, 48), np.uint8)
    mask = ellipse_masks(rng, 1, 64, 48)
    params = sas_fast.SASConfig().sample(1, seed=3, sample_ids=[sid], masks=mask)
    return sas_fast.augment(image, mask, params, seed=3, backend=backend)


def test_threads_give_the_serial_results(any_backend):
    serial = [job((sid, any_backend)) for sid in range(N_JOBS)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(job, [(sid, any_backend) for sid in range(N_JOBS)]))
    for (a, am), (b, bm) in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)


def test_worker_processes_give_the_serial_results():
    """DataLoader-style: samples spread over spawned worker processes, any order."""
    backend = "auto"
    serial = [job((sid, backend)) for sid in range(N_JOBS)]
    import multiprocessing

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        spread = list(pool.map(job, [(sid, backend) for sid in reversed(range(N_JOBS))]))
    for (a, am), (b, bm) in zip(serial, reversed(spread)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(am, bm)


def test_processes_compiling_into_one_empty_cache_at_once(tmp_path):
    """Two processes JIT-compile into the same empty Numba cache at the same time; both succeed, and agree."""
    pytest.importorskip("numba")
    if "numba" not in sas_fast.available_backends():
        pytest.skip("the numba backend is not available here")
    script = textwrap.dedent(
        """
        import numpy as np, sas_fast
        img = np.arange(40 * 30, dtype=np.uint16).reshape(1, 40, 30)
        msk = (img % 3 == 0)
        p = sas_fast.SASConfig().sample(1, seed=1, masks=msk)
        out, m = sas_fast.augment(img, msk, p, seed=1, backend="numba")
        print(int(out.astype(np.int64).sum()), int(m.sum()))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    assert results[0][0] == results[1][0] and results[0][0].strip()
    assert any((tmp_path / "cache").rglob("*.nbi")), "nothing was cached"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_memory_growth_over_10000_calls(any_backend):
    rng = np.random.default_rng(0)
    image = random_image(rng, (2, 32, 32), np.uint8)
    mask = ellipse_masks(rng, 2, 32, 32)
    params = sas_fast.SASConfig().sample(2, seed=0, masks=mask)
    out = (np.empty_like(image), np.empty_like(mask))
    for _ in range(200):  # warm-up: JIT, caches, allocator pools
        sas_fast.augment(image, mask, params, seed=0, backend=any_backend, out=out)
    start = _rss_bytes()
    for _ in range(10_000):
        sas_fast.augment(image, mask, params, seed=0, backend=any_backend, out=out)
    growth = _rss_bytes() - start
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 10,000 calls"
