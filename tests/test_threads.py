"""sas_fast.threads: the serial path, thread counts, the fork-safe layer and its loud fallback.

Each scenario runs in a fresh interpreter (the threading layer is chosen once per process), with a
timeout, so a crash or a hang fails the test instead of taking pytest down.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sas_fast
from sas_fast import threads

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, multiprocessing as mp, sys, threading, warnings
import numpy as np
import sas_fast

images = np.random.default_rng(0).integers(0, 256, (16, 256, 256), dtype=np.uint8)  # 2**20 pixels: parallel
masks = np.zeros((16, 256, 256), np.uint8)
masks[:, 80:160, 60:200] = 1
t = sas_fast.SAS(seed=0)
ids = np.arange(16)
want = t.batch(images, masks, sample_ids=ids)["image"]

def child(_):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = t.batch(images, masks, sample_ids=ids)["image"]
    return bool(np.array_equal(got, want)), sas_fast.get_num_threads(), [str(w.message) for w in caught]

with mp.get_context("fork").Pool(2) as pool:
    children = pool.map_async(child, range(2)).get(timeout=120)
results = [None] * 3  # concurrent parallel calls from Python threads
def run(k):
    results[k] = bool(np.array_equal(t.batch(images, masks, sample_ids=ids)["image"], want))
workers = [threading.Thread(target=run, args=(k,)) for k in range(3)]
for w in workers: w.start()
for w in workers: w.join()
print("RESULT " + json.dumps({"layer": sas_fast.threading_layer(), "children": children, "threads": results}))
"""


def _scenario(**env: str) -> dict:
    pytest.importorskip("numba")
    full_env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "SAS_FAST_NUM_THREADS")}
    full_env.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=full_env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"the scenario died (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_default_layer_is_fork_safe_and_thread_safe():
    result = _scenario(SAS_FAST_NUM_THREADS="2")
    assert result["layer"] in threads.FORK_SAFE_LAYERS
    assert [ok for ok, _, _ in result["children"]] == [True, True]  # parallel batches in fork children
    assert result["threads"] == [True, True, True]  # concurrent parallel calls stay exact


def test_forced_gnu_openmp_makes_fork_children_serial_and_says_so():
    result = _scenario(NUMBA_THREADING_LAYER="omp", SAS_FAST_NUM_THREADS="2")
    assert result["layer"] == "omp"
    for ok, _, messages in result["children"]:
        assert ok  # they were killed by libgomp before: "fork() called from a process already using GNU OpenMP"
        assert any("runs serially here" in m for m in messages)
    assert result["threads"] == [True, True, True]


def test_thread_count_rules(monkeypatch):
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setenv("SAS_FAST_NUM_THREADS", "3")
    assert sas_fast.get_num_threads() == 3
    monkeypatch.setenv("SAS_FAST_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="SAS_FAST_NUM_THREADS: expected an integer >= 1"):
        sas_fast.get_num_threads()
    monkeypatch.delenv("SAS_FAST_NUM_THREADS")
    monkeypatch.setattr(threads, "_forked", True)
    assert sas_fast.get_num_threads() == 1  # a fork child: one thread unless told otherwise
    sas_fast.set_num_threads(2)
    try:
        assert sas_fast.get_num_threads() == 2
    finally:
        sas_fast.set_num_threads(None)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n: expected an integer >= 1 or None"):
            sas_fast.set_num_threads(bad)


def test_small_calls_never_ask_for_threads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a small call entered the parallel section")

    monkeypatch.setattr("sas_fast.backends.numba_cpu.parallel_section", refuse)
    import numpy as np

    image = np.zeros((4, 64, 64), np.uint8)  # 16,384 canvas values: well below PARALLEL_MIN_PIXELS
    sas_fast.rescale_paste(image, np.ones_like(image), scale=0.5, backend="numba")
    assert threads.use_parallel(image.size) == 1
