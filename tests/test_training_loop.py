"""sas_fast in a training loop: DataLoader workers (fork and spawn), fork pools, epochs, threads.

Each scenario runs in its own Python process (``python -c ... _child(name)``) under a timeout:
a worker killed by a fork-unsafe thread pool, or a pool that hangs, must fail its test rather than
take the pytest process down or hang CI.  The child prints one ``RESULT <json>`` line; the tests
below check it.  The fork scenarios first run, in the parent, a batch call big enough to take the
parallel path (so its thread pool exists when the parent forks) and a per-sample call, as a user's
``ds[0]`` or a batch augmentation before ``DataLoader(num_workers=2)`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the training-loop tests need a real DataLoader")

import sas_fast  # noqa: E402
from sas_fast import SAS, EpochSampler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N, SIZE, SEED = 12, 64, 11
CHILD_TIMEOUT_S = 60  # inside a child: DataLoader / pool waits
SCENARIO_TIMEOUT_S = 150  # the whole child process (imports, a cold JIT cache, two spawned workers)


# ----------------------------------------------------------------------------- in the child


def _data(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    images = rng.integers(0, 256, (n, SIZE, SIZE), dtype=np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centres = rng.integers(16, SIZE - 16, (n, 2))
    masks = (((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) < 100).astype(np.uint8)
    return images, masks


class _Dataset:
    """The README's rule: item ``sid % len``, augmented as global sample id ``sid``; also reports
    the thread counts seen right after the sas_fast call (in a worker: the worker's own)."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, sas: SAS) -> None:
        self.images, self.masks, self.sas = images, masks, sas

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, sid: int) -> tuple[Any, ...]:
        i = sid % len(self)
        out = self.sas(image=self.images[i], mask=self.masks[i], sample_id=sid)
        # A missing get_num_threads is recorded (and fails the thread test) instead of raising
        # here, which would also fail the output checks that do not depend on it.
        get = getattr(sas_fast, "get_num_threads", None)
        sas_threads = get() if get is not None else -1
        return out["image"], out["mask"], sid, sas_threads, torch.get_num_threads()


def _dataset() -> _Dataset:
    images, masks = _data()
    return _Dataset(images, masks, SAS(seed=SEED))


def _warm_up_parent(ds: _Dataset) -> bool | None:
    """A big batch call (parallel path: its pool is running when we fork) and a per-sample call.

    Returns whether Numba's thread pool is now started, so the test can tell that the fork really
    comes after a parallel call; None where no pool can start (no Numba backend, or one thread).
    """
    reps = -(-(1 << 20) // (N * SIZE * SIZE))  # >= 2**20 canvas pixels: above any serial cut-off
    images, masks = np.tile(ds.images, (reps, 1, 1)), np.tile(ds.masks, (reps, 1, 1))
    ds.sas.batch(images, masks, sample_ids=np.arange(len(images)))
    ds[0]
    if "numba" not in sas_fast.available_backends():
        return None
    import numba
    import numba.np.ufunc.parallel as npp

    if numba.config.NUMBA_NUM_THREADS < 2:
        return None

    return bool(getattr(npp, "_is_initialized", False))


def _equal(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    return all(np.array_equal(np.asarray(g), np.asarray(w)) for g, w in zip(got[:2], want[:2]))


_DS: _Dataset  # the scenario's dataset, set before the pool forks


def _job(sids: list[int]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """A pool worker's task: per-sample calls and one batch call over ``sids`` (fork: ``_DS`` is inherited)."""
    per_sample = [_DS[sid][:2] for sid in sids]
    i = [sid % len(_DS) for sid in sids]
    batch = _DS.sas.batch(_DS.images[i], _DS.masks[i], sample_ids=sids)
    return [per_sample, list(zip(batch["image"], batch["mask"]))]


def _load(ds: _Dataset, loader_kwargs: dict[str, Any], epochs: int, sampler: EpochSampler | None = None):
    """Run the DataLoader; returns ``{(epoch, index): (image, mask, sid)}`` and the thread counts seen."""
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, **loader_kwargs)
    items, threads = {}, set()
    for epoch in range(epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        for image, mask, sid, sas_threads, torch_threads in loader:
            for k, s in enumerate(sid.tolist()):
                assert (epoch, s % len(ds)) not in items
                items[epoch, s % len(ds)] = (image[k].numpy(), mask[k].numpy(), s)
            threads |= set(zip(sas_threads.tolist(), torch_threads.tolist()))
    return items, threads


def _child(name: str) -> None:
    global _DS
    import multiprocessing

    ds = _DS = _dataset()
    result: dict[str, Any] = {}
    if name in ("dataloader-fork", "dataloader-spawn"):
        result["pool_started"] = _warm_up_parent(ds)
        kwargs = dict(batch_size=4, num_workers=2, multiprocessing_context=name.split("-")[1], timeout=CHILD_TIMEOUT_S)
        items, threads = _load(ds, kwargs, epochs=1)
        result["items"] = len(items)
        result["mismatched_ids"] = [i for (_, i), item in items.items() if not _equal(item, ds[i])]
        result["worker_threads"] = sorted(threads)
    elif name in ("pool-fork", "executor-fork"):
        result["pool_started"] = _warm_up_parent(ds)
        chunks = [[0, 5, 9], [13, 2], [7, 30, 11], [4]]
        fork = multiprocessing.get_context("fork")
        if name == "pool-fork":
            with fork.Pool(2) as pool:
                outputs = pool.map_async(_job, chunks).get(timeout=CHILD_TIMEOUT_S)
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(2, mp_context=fork) as pool:
                outputs = list(pool.map(_job, chunks, timeout=CHILD_TIMEOUT_S))
        result["mismatched_ids"] = sorted(
            sid
            for chunk, (per_sample, batch) in zip(chunks, outputs)
            for sid, one, row in zip(chunk, per_sample, batch)
            if not (_equal(one, ds[sid]) and _equal(row, ds[sid]))
        )
        result["items"] = sum(map(len, chunks))
    elif name == "epochs":
        # A fresh parent, as in the README recipe: 2 persistent workers first, then in-process.
        runs = {}
        for workers, batch_size in ((2, 4), (0, 5)):
            kwargs = dict(batch_size=batch_size, num_workers=workers)
            if workers:
                kwargs.update(persistent_workers=True, multiprocessing_context="fork", timeout=CHILD_TIMEOUT_S)
            runs[workers], _ = _load(ds, kwargs, epochs=2, sampler=EpochSampler(ds, shuffle=True, seed=3))
        two, zero = runs[2], runs[0]
        result["keys_equal"] = sorted(two) == sorted(zero) == [(e, i) for e in range(2) for i in range(N)]
        result["differ_0_vs_2"] = sorted(str(k) for k in two if not (k in zero and _equal(two[k], zero[k])))
        result["same_across_epochs"] = [i for i in range(N) if _equal(two[0, i], two[1, i])]
        result["ids"] = {str(k): v[2] for k, v in two.items()}
    else:
        raise ValueError(f"name: unknown scenario {name!r}")
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- in pytest

_results: dict[str, dict[str, Any] | str] = {}  # scenario -> its result, or why it failed


def scenario(name: str) -> dict[str, Any]:
    """Run scenario ``name`` in a fresh process (once per test session); fail on a crash or hang."""
    if name not in _results:
        _results[name] = _run_child(name)
    result = _results[name]
    if isinstance(result, str):  # a failed run fails every test reading it, without running again
        pytest.fail(result)
    return result


def _run_child(name: str) -> dict[str, Any] | str:
    """The child's result, or a message saying how it crashed or hung."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import tests.test_training_loop as t; t._child({name!r})"
    # Its own session, so a timeout can kill the child's forked workers too (they share its group).
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=SCENARIO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return f"scenario {name!r} hung: no result after {SCENARIO_TIMEOUT_S} s\n{err[-3000:]}"
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return f"scenario {name!r} failed (exit code {proc.returncode}):\n{err[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def _check_children_match_parent(result: dict[str, Any], items: int) -> None:
    assert result["items"] == items
    assert result["mismatched_ids"] == [], "children's outputs differ from the parent's for these ids"
    # The fork must come after a parallel call, or the scenario proves nothing about fork safety.
    assert result["pool_started"] in (True, None), "the parent's batch call did not start the thread pool"


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_after_parent_calls_match_the_parent(context):
    _check_children_match_parent(scenario(f"dataloader-{context}"), items=N)


def test_fork_pool_after_parent_calls_matches_the_parent():
    _check_children_match_parent(scenario("pool-fork"), items=9)


def test_fork_process_pool_executor_after_parent_calls_matches_the_parent():
    _check_children_match_parent(scenario("executor-fork"), items=9)


def test_num_workers_0_and_2_give_identical_outputs():
    result = scenario("epochs")
    assert result["keys_equal"], "each (epoch, index) must be loaded exactly once per run"
    assert result["differ_0_vs_2"] == [], "(epoch, index) pairs whose output depends on num_workers"


def test_persistent_workers_get_fresh_augmentations_each_epoch():
    result = scenario("epochs")
    assert result["same_across_epochs"] == [], "indices augmented identically in epochs 0 and 1"
    ids = result["ids"]
    assert all(ids[str((e, i))] == e * N + i for e in range(2) for i in range(N)), "id != epoch * len + index"


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_one_thread_per_dataloader_worker(context):
    """Workers are the parallelism: sas_fast uses one thread there, and leaves torch's setting alone."""
    threads = scenario(f"dataloader-{context}")["worker_threads"]
    assert threads, "no worker reported its thread counts"
    assert {sas for sas, _ in threads} == {1}, (
        f"sas_fast.get_num_threads() in DataLoader workers: {threads} (-1: sas_fast.get_num_threads is missing)"
    )
    assert {t for _, t in threads} == {1}, f"torch.get_num_threads() in workers after sas_fast calls: {threads}"


# ----------------------------------------------------------------------------- EpochSampler


def test_epoch_sampler_ids_and_permutations():
    sampler = EpochSampler(5)
    assert len(sampler) == 5 and list(sampler) == [0, 1, 2, 3, 4]
    sampler.set_epoch(3)
    assert list(sampler) == [15, 16, 17, 18, 19]
    shuffled = EpochSampler(list(range(50)), shuffle=True, seed=9)
    first = shuffled.ids(0)
    assert sorted(first.tolist()) == list(range(50)) and first.tolist() != list(range(50))
    assert sorted(shuffled.ids(1).tolist()) == list(range(50, 100))
    assert (shuffled.ids(1) - 50).tolist() != first.tolist(), "each epoch gets its own permutation"
    assert EpochSampler(50, shuffle=True, seed=9).ids(0).tolist() == first.tolist(), "seeded: reproducible"
    assert EpochSampler(50, shuffle=True, seed=10).ids(0).tolist() != first.tolist()
    assert all(type(sid) is int for sid in EpochSampler(3, epoch=2))


def test_epoch_sampler_refuses_a_silent_repeat():
    sampler = EpochSampler(4)
    it = iter(sampler)  # created but never advanced: does not count as a pass (DataLoader does this)
    del it
    assert list(sampler) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match=r"second pass over epoch 0 started without set_epoch"):
        list(sampler)
    sampler.set_epoch(0)  # a deliberate repeat
    assert list(sampler) == [0, 1, 2, 3]


def test_epoch_sampler_keeps_ids_below_2_32():
    n = 1 << 30
    EpochSampler(n, epoch=3)  # ids up to 2**32 - 1
    with pytest.raises(ValueError, match=r"epoch: epoch 4 of 1073741824 samples .* below 2\*\*32; epochs 0\.\.3 fit"):
        EpochSampler(n).set_epoch(4)
    with pytest.raises(ValueError, match=r"data_source: expected a length in \[0, 2\*\*32\]"):
        EpochSampler((1 << 32) + 1)
    with pytest.raises(TypeError, match="epoch: expected an integer >= 0"):
        EpochSampler(3).set_epoch(1.0)
    with pytest.raises(ValueError, match="epoch: expected an integer >= 0, got -1"):
        EpochSampler(3, epoch=-1)
    with pytest.raises(TypeError, match="data_source: expected a dataset"):
        EpochSampler(2.5)
    with pytest.raises(ValueError, match="seed"):
        EpochSampler(3, seed=-1)


def test_epoch_sampler_module_does_not_import_torch():
    code = "import sys, sas_fast.epochs, sas_fast; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
