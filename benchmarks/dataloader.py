"""The DataLoader suite (issue 10): samples/s of a real ``torch.utils.data.DataLoader`` pass.

A Dataset of ``n`` generated in-memory uint8 images (``workloads.make_samples``) applies one
contender of ``baselines.LOADER`` per sample in ``__getitem__`` (sas_fast: ``SAS(...)(...,
sample_id=index)``); batches of ``batch`` are collated by torch's default collate.  For each worker
count (0, and 2 forked workers with ``persistent_workers=True``) one warm-up pass (fork, JIT cache
load, page faults), then ``repeats`` timed full passes, the (contender, workers) order rotating
every round.  Each process uses one thread (``NUMBA_NUM_THREADS=1``, ``SAS_FAST_NUM_THREADS=1``,
``cv2.setNumThreads(1)``; torch's workers use one thread by default), so 2 workers is 2 cores.

Every contender runs in its own fresh interpreter (``python -m benchmarks.dataloader --child``),
driven over a pipe: a parent that has run a parallel Numba call cannot fork workers safely under
GNU OpenMP, and a worker that crashes or hangs must end as a FAILED row, not a lost run.  Inside a
child the worker loaders fork before the process runs any transform itself.  Deterministic
contenders (sas_fast) are checked: the collated batches of every worker count must be identical,
and equal to the transform called directly.

Used by ``python -m benchmarks.compare --suite dataloader``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .baselines import LOADER, LoaderContender, loader_by_key

__all__ = ["run_suite"]

ROOT = Path(__file__).resolve().parent.parent
#: The ratio base.
BASE = "albumentations"
#: Environment of every child (and so of its workers): one thread per process, no network.
CHILD_ENV = {"NUMBA_NUM_THREADS": "1", "SAS_FAST_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
             "NO_ALBUMENTATIONS_UPDATE": "1"}


def _failure(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"FAILED: {type(exc).__name__}: {first[:240]}"


# ----------------------------------------------------------------------------- the child process


def _resolve(key: str) -> LoaderContender:
    """A :data:`baselines.LOADER` key, or ``module:attribute`` naming a :class:`LoaderContender` (tests)."""
    if ":" in key:
        module, attr = key.split(":", 1)
        return getattr(importlib.import_module(module), attr)
    return loader_by_key(key)


def _worker_init(worker_id: int) -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _child(args: argparse.Namespace) -> None:
    """Serve ``pass W`` / ``check`` / ``quit`` lines from stdin with one JSON line each on the real stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol

    def say(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    started = time.perf_counter()
    try:
        import torch
        from torch.utils.data import DataLoader, Dataset

        from .workloads import make_samples

        _worker_init(0)
        contender = _resolve(args.child)
        wl = make_samples(args.size, "uint8", n=args.n)
        transform = contender.make(wl)
    except Exception as exc:  # noqa: BLE001
        say({"fatal": _failure(exc)})
        return

    class Samples(Dataset):
        """``n`` in-memory samples, the transform applied in ``__getitem__`` with the index as sample id."""

        def __init__(self) -> None:
            self.images, self.masks = wl.images, wl.masks

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, index: int):
            return transform(self.images[index], self.masks[index], index)

    dataset = Samples()
    loaders = {}
    for workers in sorted(args.workers, reverse=True):  # worker loaders first: they fork before any transform ran here
        options = {"batch_size": args.batch, "shuffle": False, "num_workers": workers}
        if workers:
            options.update(
                persistent_workers=True, multiprocessing_context="fork", timeout=args.loader_timeout,
                worker_init_fn=_worker_init,
            )
        loaders[workers] = DataLoader(dataset, **options)

    def one_pass(workers: int, keep: bool = False):
        start = time.perf_counter()
        count, batches = 0, []
        for image, mask in loaders[workers]:
            count += len(image)
            if keep:
                batches.append((image, mask))
        elapsed = time.perf_counter() - start
        if count != args.n:
            raise RuntimeError(f"the pass gave {count} samples, expected {args.n}")
        return elapsed, batches

    errors: dict[int, str] = {}
    for workers in loaders:  # warm-up passes, in the same order (forks first)
        try:
            one_pass(workers)
        except Exception as exc:  # noqa: BLE001  (a crashed or hung worker: this row fails, the others go on)
            errors[workers] = _failure(exc)
    say({"ready": True, "errors": {str(w): e for w, e in errors.items()}, "startup_s": time.perf_counter() - started})

    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "quit":
            break
        if command[0] == "pass":
            workers = int(command[1])
            if workers in errors:
                say({"error": errors[workers]})
                continue
            try:
                say({"time": one_pass(workers)[0]})
            except Exception as exc:  # noqa: BLE001
                errors[workers] = _failure(exc)
                say({"error": errors[workers]})
        elif command[0] == "check":
            say({"check": _check(args, contender, wl, transform, loaders, errors, one_pass, torch)})
        else:
            say({"error": f"unknown command {line.strip()!r}"})
    if errors:  # a broken loader may hold stuck workers: leave now, the parent kills this process group
        proto.flush()
        os._exit(3)
    for loader in loaders.values():  # persistent workers: shut them down now, not at interpreter exit
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


def _check(args, contender, wl, transform, loaders, errors, one_pass, torch) -> dict:
    """Shapes and dtypes of the collated batches; for deterministic contenders the batches of every
    worker count are identical and equal the transform called directly in this process."""
    problems: list[str] = []
    collated = {}
    for workers in loaders:
        if workers in errors:
            continue
        try:
            _, batches = one_pass(workers, keep=True)
        except Exception as exc:  # noqa: BLE001
            errors[workers] = _failure(exc)
            continue
        sizes = [len(image) for image, _ in batches]
        if any(s != args.batch for s in sizes[:-1]):
            problems.append(f"{workers} workers: batch sizes {sizes}")
        image = torch.cat([b[0] for b in batches]).numpy()
        mask = torch.cat([b[1] for b in batches]).numpy()
        want = (args.n, args.size, args.size)
        for name, arr in (("image", image), ("mask", mask)):
            if arr.shape != want or arr.dtype != np.uint8:
                problems.append(f"{workers} workers: {name} {arr.shape} {arr.dtype}, expected {want} uint8")
        if not set(np.unique(mask)) <= set(np.unique(wl.masks)):
            problems.append(f"{workers} workers: mask labels not in the input masks")
        collated[workers] = (image, mask)
    result: dict = {"problems": problems, "identical": None, "direct": None, "workers": sorted(collated)}
    if contender.deterministic and collated:
        first_workers, (image0, mask0) = next(iter(sorted(collated.items())))
        if len(collated) > 1:
            result["identical"] = all(
                np.array_equal(image0, image) and np.array_equal(mask0, mask) for image, mask in collated.values()
            )
            if not result["identical"]:
                problems.append(f"batches differ between {sorted(collated)} workers")
        direct = [transform(wl.images[i], wl.masks[i], i) for i in range(min(args.batch, args.n))]
        result["direct"] = all(
            np.array_equal(image0[i], img) and np.array_equal(mask0[i], msk) for i, (img, msk) in enumerate(direct)
        )
        if not result["direct"]:
            problems.append(f"{first_workers} workers: batches differ from the transform called directly")
    return result


# ----------------------------------------------------------------------------- the parent


class ChildFailed(RuntimeError):
    """A child process exited, answered nonsense or did not answer in time."""


@dataclass
class _Child:
    key: str
    proc: subprocess.Popen
    stderr: object
    buffer: bytes = b""
    dead: str = ""

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ChildFailed(self._why(f"cannot write to it ({exc})")) from None

    def receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(self._why(f"no answer within {timeout:g} s (hung?)"))
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise ChildFailed(self._why("closed its output"))
                self.buffer += chunk
            elif self.proc.poll() is not None:
                raise ChildFailed(self._why("exited"))
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise ChildFailed(self._why(f"answered {line[:200]!r}")) from None

    def _why(self, what: str) -> str:
        code = self.proc.poll()
        self.stderr.flush()
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        tail = lines[-1][:240] if lines else ""
        return f"FAILED: the {self.key} process {what}" + (f", exit {code}" if code is not None else "") + (
            f": {tail}" if tail else ""
        )

    def stop(self, grace: float = 10.0) -> None:
        """Ask it to quit; unless it then exits cleanly, kill its process group (it and its workers)."""
        clean = False
        if self.proc.poll() is None:
            try:
                self.send("quit")
                clean = self.proc.wait(grace) == 0
            except (ChildFailed, subprocess.TimeoutExpired):
                pass
        if not clean or self.dead:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        self.stderr.close()


def _start(key: str, size: int, n: int, batch: int, workers: tuple[int, ...], loader_timeout: float) -> _Child:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **CHILD_ENV)
    command = [
        sys.executable, "-m", "benchmarks.dataloader", "--child", key, "--size", str(size), "--n", str(n),
        "--batch", str(batch), "--loader-timeout", str(loader_timeout), "--workers", *map(str, workers),
    ]
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        start_new_session=True,  # its own process group: a stuck child and its workers are killed together
    )
    return _Child(key, proc, stderr)


@dataclass
class _Row:
    contender: LoaderContender
    workers: int
    times: list[float] = field(default_factory=list)
    failed: str = ""
    problems: list[str] = field(default_factory=list)
    checked: str = ""


def time_size(
    size: int, contenders: list[LoaderContender], *, n: int, batch: int, workers: tuple[int, ...], repeats: int,
    startup_timeout: float, pass_timeout: float, loader_timeout: float, keys: list[str] | None = None,
) -> list[_Row]:
    """Start one child per contender, time ``repeats`` rotating rounds of full passes, check, stop them."""
    keys = keys or [c.key for c in contenders]
    children = [_start(key, size, n, batch, workers, loader_timeout) for key in keys]
    rows = {(child.key, w): _Row(contender, w) for child, contender in zip(children, contenders) for w in workers}

    def fail(child: _Child, why: str) -> None:
        child.dead = why
        for w in workers:
            if not rows[(child.key, w)].failed:
                rows[(child.key, w)].failed = why

    try:
        for child in children:  # they start up (imports, warm-up passes) side by side
            try:
                ready = child.receive(startup_timeout)
            except ChildFailed as exc:
                fail(child, str(exc))
                continue
            if "fatal" in ready:
                fail(child, ready["fatal"])
                continue
            for w, error in ready.get("errors", {}).items():
                rows[(child.key, int(w))].failed = error
        order = [(child, w) for child in children for w in workers]
        for r in range(repeats):
            shift = r % len(order)
            for child, w in order[shift:] + order[:shift]:
                row = rows[(child.key, w)]
                if row.failed or child.dead:
                    continue
                try:
                    child.send(f"pass {w}")
                    answer = child.receive(pass_timeout)
                except ChildFailed as exc:
                    fail(child, str(exc))
                    continue
                if "error" in answer:
                    row.failed = answer["error"]
                else:
                    row.times.append(answer["time"])
        for child in children:
            if child.dead:
                continue
            try:
                child.send("check")
                result = child.receive(pass_timeout * (len(workers) + 1))["check"]
            except (ChildFailed, KeyError) as exc:
                fail(child, str(exc) if isinstance(exc, ChildFailed) else "FAILED: no check result")
                continue
            for w in workers:
                row = rows[(child.key, w)]
                row.problems = list(result["problems"])
                if w not in result["workers"] and not row.failed:
                    row.failed = "FAILED: its loader broke during the check pass"
                if result["identical"] is not None or result["direct"] is not None:
                    parts = []
                    if result["identical"]:
                        parts.append(f"identical across {'/'.join(map(str, result['workers']))} workers")
                    if result["direct"]:
                        parts.append("= direct calls")
                    row.checked = ", ".join(parts)
                else:
                    row.checked = "shapes, dtypes, labels"
    finally:
        for child in children:
            child.stop()
    return list(rows.values())


def _table(size: int, n: int, batch: int, rows: list[_Row]) -> tuple[list[str], dict]:
    speed = {(row.contender.key, row.workers): n / statistics.median(row.times) for row in rows
             if row.times and not row.failed}
    lines = [
        f"### DataLoader, {n} x {size}^2 uint8, batch {batch}",
        "",
        "| contender | workers | samples/s (median) | min-max | ms / pass | speed / albumentations (same workers) | "
        "check | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    raw: dict = {"size": size, "n": n, "batch": batch, "rows": [], "scaling": []}
    reasons: list[str] = []
    for row in rows:
        c = row.contender
        if row.failed or not row.times:
            why = row.failed or "FAILED: no pass timed"
            if why not in reasons:
                reasons.append(why)
            lines.append(f"| {c.label} | {row.workers} | FAILED [{reasons.index(why) + 1}] | | | | | {c.note} |")
            raw["rows"].append({"key": c.key, "workers": row.workers, "failed": why})
            continue
        sps = speed[(c.key, row.workers)]
        base = speed.get((BASE, row.workers))
        ratio = f"{sps / base:.2f}x" if base else "n/a"
        lo, hi = n / max(row.times), n / min(row.times)
        verdict = ("ok" + (f" ({row.checked})" if row.checked else "")) if not row.problems else (
            "FAIL: " + "; ".join(row.problems[:3])
        )
        ms = statistics.median(row.times) * 1e3
        lines.append(
            f"| {c.label} | {row.workers} | {sps:,.0f} | {lo:,.0f}-{hi:,.0f} | {ms:,.1f} | {ratio} | {verdict} | {c.note} |"
        )
        raw["rows"].append(
            {"key": c.key, "workers": row.workers, "times_s": row.times, "samples_per_s": sps, "problems": row.problems,
             "checked": row.checked}
        )
    workers = sorted({row.workers for row in rows})
    if len(workers) > 1:
        low, high = workers[0], workers[-1]
        for key in dict.fromkeys(row.contender.key for row in rows):
            if (key, low) in speed and (key, high) in speed:
                gain = speed[(key, high)] / speed[(key, low)]
                lines.append(f"| scaling: {high} workers / {low} workers ({key}) | | {gain:.2f}x | | | | | |")
                raw["scaling"].append({"key": key, "from": low, "to": high, "ratio": gain})
    lines.append("")
    lines += [f"[{i}] {reason}" for i, reason in enumerate(reasons, 1)]
    return lines + [""], raw


def run_suite(
    sizes: tuple[int, ...] = (256, 512),
    *,
    n: int = 128,
    batch: int = 16,
    workers: tuple[int, ...] = (0, 2),
    repeats: int = 7,
    contenders: list[LoaderContender] | None = None,
    keys: list[str] | None = None,
    startup_timeout: float = 600.0,
    pass_timeout: float = 300.0,
    loader_timeout: float = 120.0,
) -> list[dict]:
    """Print the DataLoader tables (Markdown, one per image side); their raw numbers.

    ``keys`` name the children's contenders when they are not :data:`LOADER` keys (``module:attr``).
    """
    if importlib.util.find_spec("torch") is None:
        print("## DataLoader\n\nskipped: PyTorch is not installed (pip install torch); the suite needs "
              "torch.utils.data.DataLoader.\n", flush=True)
        return [{"skipped": "torch is not installed"}]
    contenders = contenders or LOADER
    print(
        f"## DataLoader\n\ntorch.utils.data.DataLoader over an in-memory Dataset, the transform in __getitem__, "
        f"default collate; workers {' and '.join(map(str, workers))} (fork, persistent_workers=True); per worker "
        f"count one warm-up pass, then the median of {repeats} full passes, (contender, workers) order rotating each "
        "round; each contender in its own fresh process; one thread per process (NUMBA_NUM_THREADS=1, "
        "SAS_FAST_NUM_THREADS=1, cv2.setNumThreads(1)).\n",
        flush=True,
    )
    raws = []
    for size in sizes:
        rows = time_size(
            size, contenders, n=n, batch=batch, workers=workers, repeats=repeats, startup_timeout=startup_timeout,
            pass_timeout=pass_timeout, loader_timeout=loader_timeout, keys=keys,
        )
        lines, raw = _table(size, n, batch, rows)
        raws.append(raw)
        print("\n".join(lines), flush=True)
    return raws


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dataloader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", metavar="CONTENDER", help="serve one contender over stdin/stdout (internal)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loader-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    run_suite(tuple(args.sizes), n=args.n, batch=args.batch, workers=tuple(args.workers), repeats=args.repeats,
              loader_timeout=args.loader_timeout)


if __name__ == "__main__":
    main()
