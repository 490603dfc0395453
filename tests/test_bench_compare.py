"""CI smoke of issue 10's benchmark machinery (``benchmarks.per_call``, ``benchmarks.dataloader``).

Both suites run end to end in a tiny mode (32^2 images, a few calls, a DataLoader over 8 samples)
and every row's output check passes.  No timing is asserted: performance lives in
``python -m benchmarks.compare``, never in timed tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time

import numpy as np
import pytest

from benchmarks import compare, dataloader
from benchmarks.baselines import PER_CALL, LoaderContender
from sas_fast.backends import BACKENDS

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_per_call_rows_come_from_the_backend_registry():
    """Three sas_fast rows (transform, prebuilt augment, bare kernel) per compiled backend, then the baselines."""
    compiled = [name for name in BACKENDS if name != "numpy"]
    sas_rows = [c for c in PER_CALL if c.backend is not None]
    assert [(c.backend, c.role) for c in sas_rows] == [
        (name, role) for name in compiled for role in ("transform", "augment", "kernel")
    ]
    assert {"albumentations", "opencv"} <= {c.key for c in PER_CALL if c.backend is None}


def test_tiny_suites_run_end_to_end_and_their_checks_pass(tmp_path, capsys):
    """``compare --suite per-call dataloader --tiny``: every measured row passes its output check."""
    out_json = tmp_path / "tiny.json"
    compare.main(["--suite", "per-call", "dataloader", "--tiny", "--json", str(out_json)])
    out = capsys.readouterr().out
    raw = json.loads(out_json.read_text())
    assert "### Targets" in out and "overhead" in out

    (size,) = raw["per_call"]
    assert (size["side"], size["dtype"]) == (32, "uint8")
    measured = {}
    for row in size["rows"]:
        if "skipped" in row:  # only backends that cannot run here (CuPy without a GPU) may be missing
            assert not row["skipped"].startswith("FAILED") and row["key"].endswith("-cupy"), row
            continue
        assert row["problems"] == [], row
        assert len(row["times_s"]) == 2 and all(t > 0 for t in row["times_s"])
        measured[row["key"]] = row
    assert {"sas-numba", "augment-numba", "kernel-numba", "albumentations", "opencv"} <= set(measured)
    assert any(o["backend"] == "numba" and o["what"] == "transform-kernel" for o in size["overhead"])

    if not HAS_TORCH:
        assert raw["dataloader"] == [{"skipped": "torch is not installed"}]
        assert "PyTorch is not installed" in out
        return
    (loader,) = raw["dataloader"]
    rows = {(r["key"], r["workers"]): r for r in loader["rows"]}
    assert set(rows) == {(key, w) for key in ("sas_fast", "albumentations", "no-augmentation") for w in (0, 2)}
    for row in rows.values():
        assert "failed" not in row, row
        assert row["problems"] == [] and len(row["times_s"]) == 2
    # sas_fast: the collated batches of the 0- and 2-worker passes are identical (and equal direct calls)
    assert "identical across 0/2 workers" in rows[("sas_fast", 0)]["checked"]
    assert "= direct calls" in rows[("sas_fast", 2)]["checked"]


def test_the_dataloader_suite_says_why_it_skips_without_torch(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert dataloader.run_suite((32,), n=8, batch=4, repeats=1) == [{"skipped": "torch is not installed"}]
    assert "skipped: PyTorch is not installed" in capsys.readouterr().out
    assert "not measured (torch is not installed)" in compare.targets({}, None, None, [{"skipped": "torch is not installed"}])


# ----------------------------------------------------------------------------- broken contenders


def _in_worker() -> bool:
    from torch.utils.data import get_worker_info

    return get_worker_info() is not None


class _Crash:
    """Kills the DataLoader worker it runs in (the main process gets the plain inputs)."""

    def __init__(self, wl) -> None:
        pass

    def __call__(self, image, mask, index):
        if _in_worker():
            os.kill(os.getpid(), signal.SIGKILL)
        return image, mask


class _Hang:
    """Never returns inside a DataLoader worker."""

    def __init__(self, wl) -> None:
        pass

    def __call__(self, image, mask, index):
        if _in_worker():
            time.sleep(3600)
        return image, mask


class _WorkerDependent:
    """Claims to be deterministic but its output depends on the process it runs in."""

    def __init__(self, wl) -> None:
        pass

    def __call__(self, image, mask, index):
        return (image + np.uint8(_in_worker())).astype(np.uint8), mask


CRASH = LoaderContender("crash", "crashes in workers", _Crash, True)
HANG = LoaderContender("hang", "hangs in workers", _Hang, True)
WORKER_DEPENDENT = LoaderContender("worker-dependent", "differs in workers", _WorkerDependent, True)


@pytest.mark.skipif(not HAS_TORCH, reason="the DataLoader suite needs torch")
def test_a_crashed_or_hung_worker_is_a_failed_row_and_a_mismatch_a_failed_check():
    contenders = [CRASH, HANG, WORKER_DEPENDENT]
    keys = [f"tests.test_bench_compare:{name}" for name in ("CRASH", "HANG", "WORKER_DEPENDENT")]
    start = time.monotonic()
    (raw,) = dataloader.run_suite(
        (32,), n=8, batch=4, repeats=1, contenders=contenders, keys=keys, loader_timeout=3, pass_timeout=60,
        startup_timeout=120,
    )
    assert time.monotonic() - start < 90  # not a hang
    rows = {(r["key"], r["workers"]): r for r in raw["rows"]}
    assert "worker" in rows[("crash", 2)]["failed"].lower()
    assert "timed out" in rows[("hang", 2)]["failed"].lower()
    for key in ("crash", "hang"):  # the same process still times its 0-worker loader
        assert "failed" not in rows[(key, 0)] and len(rows[(key, 0)]["times_s"]) == 1
    for w in (0, 2):
        assert any("differ" in p for p in rows[("worker-dependent", w)]["problems"])
