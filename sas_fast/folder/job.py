"""The ``sas-fast augment`` job: every pair of a folder, ``copies`` times, into an output folder; resumable.

Writes ``OUT/images/<rel>_sas<k>.png`` and ``OUT/masks/<rel>_sas<k>.png`` for copy ``k`` of each
pair, ``OUT/params.jsonl`` (one JSON line per output, enough to replay it without the config) and
``OUT/sas_run.json`` (the run's settings, checked when a run is resumed).  Sample ids: the pairs
found, sorted by relative image path, get indices ``0..P-1``; copy ``k`` of pair ``i`` has sample id
``i * copies + k``.  Every output depends only on ``(seed, sample id)`` and its inputs, so
``--workers`` and the chunking never change a byte.

Safety: the input and output trees must be disjoint (real paths, both ways), the output tree must
hold no symbolic link, an input whose real path lies in the output tree is skipped, and every
file is written by :class:`~sas_fast.folder.atomic.OutputTree` (atomic, never through a link).

Memory: a task is at most :data:`TASK_COPIES` copies of one pair, augmented in batches of at most
:data:`CHUNK_BYTES` of image + mask per batch (at least one copy), so peak memory depends on the
image size, not on ``copies``; at most ``4 * workers`` tasks are in flight.

Crash safety: a manifest line is appended only after both of its files are in place, and the
manifest is rebuilt (parsed, deduplicated, checked against the files) when a run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import __version__
from ..api import augment, pick_backend
from ..backends import BACKENDS
from ..config import SASConfig
from ..philox import seed_to_key
from .atomic import OutputTree
from .errors import ConfigError, JobError, PairError
from .imagefiles import MAX_IMAGE_PIXELS, encode_png, noise_channels, read_pair
from .manifest import MANIFEST, RUN_FILE, make_record, output_paths, parse
from .pairs import Pair, find_pairs
from .paths import check_disjoint, inside, real, shown

__all__ = ["CHUNK_BYTES", "TASK_COPIES", "RunSummary", "augment_folder", "backend_name", "chunk_copies"]

#: Most image + mask bytes (inputs broadcast, one copy's worth each) augmented in one batch.
CHUNK_BYTES = 32 << 20
#: Most copies of one pair in one task (one read of the pair, one group of manifest lines).
TASK_COPIES = 32
#: What applying a config (sampling parameters, validating them, allocating) raises for bad values.
APPLY_ERRORS = (ValueError, TypeError, LookupError, ArithmeticError, RecursionError, MemoryError)


@dataclass
class RunSummary:
    """What :func:`augment_folder` did: output counts, the pairs it skipped and why."""

    pairs: int
    outputs: int
    written: int
    already_done: int
    skipped: list[str] = field(default_factory=list)
    backend: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class _Task:
    in_dir: str
    out_dir: str
    pair: Pair
    index: int
    copies: int
    todo: tuple[int, ...]
    seed: int
    config: SASConfig
    backend: str
    max_pixels: int


def chunk_copies(copy_bytes: int, n: int) -> int:
    """Copies per batch for ``n`` copies of ``copy_bytes`` (image + mask) each: within :data:`CHUNK_BYTES`, >= 1."""
    return max(1, min(n, CHUNK_BYTES // max(copy_bytes, 1)))


def _reason(exc: BaseException) -> str:
    return shown(str(exc)) or type(exc).__name__


def _run_task(task: _Task) -> tuple[list[dict[str, Any]], str | None]:
    """Augment the pending copies of one pair and write their files; the manifest records, or a problem."""
    try:
        image, mask = read_pair(task.in_dir, task.pair, max_pixels=task.max_pixels)
    except PairError as exc:
        return [], str(exc)
    tree = OutputTree(task.out_dir)
    step = chunk_copies(image.nbytes + mask.nbytes, len(task.todo))
    records = []
    for start in range(0, len(task.todo), step):
        ks = task.todo[start : start + step]
        sids = [task.index * task.copies + k for k in ks]
        masks = np.broadcast_to(mask, (len(ks), *mask.shape))
        try:
            params = task.config.sample(len(ks), seed=task.seed, sample_ids=sids, masks=masks)
            out_images, out_masks = augment(
                np.broadcast_to(image, (len(ks), *image.shape)), masks, params, seed=task.seed, backend=task.backend,
                channels=noise_channels(image),
            )
        except APPLY_ERRORS as exc:
            raise ConfigError(f"the config cannot be applied to {shown(task.pair.image)}: {_reason(exc)}") from None
        for j, k in enumerate(ks):
            image_out, mask_out = output_paths(task.pair.stem, k)
            tree.write(image_out, encode_png(out_images[j]))
            tree.write(mask_out, encode_png(out_masks[j]))
            records.append(
                make_record(sids[j], k, task.seed, task.pair.image, task.pair.masks, task.pair.stem, params[j].to_dict())
            )
        del out_images, out_masks, params
    return records, None


def _init_worker(threads: int) -> None:
    # Read by Numba when its backend first loads in this (fresh, spawned) process: W workers share the cores.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))


def backend_name(backend: str) -> str:
    """The concrete backend ``backend`` stands for here for NumPy inputs (``"auto"`` resolved)."""
    module = pick_backend(backend, np.empty(0)).__name__
    return next(name for name, (mod, _) in BACKENDS.items() if mod == module)


def prepare_output(root: Path, out: Path, what: str = "output folder") -> OutputTree:
    """The tree written into (``out``, or replay's ``--into``): disjoint from the input tree
    ``root``, created, writable, free of links and temporaries."""
    check_disjoint(root, out, what=what)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"cannot write to {what} {shown(out)}: {exc.strerror or exc}") from None
    check_disjoint(root, out, what=what)  # again, now that every component exists
    tree = OutputTree(out)
    try:
        tree.probe()
    except OSError as exc:
        raise JobError(f"cannot write to {what} {shown(out)}: {exc.strerror or exc}") from None
    tree.sweep()
    return tree


def augment_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    copies: int = 1,
    seed: int = 0,
    config: SASConfig | None = None,
    workers: int = 1,
    backend: str = "auto",
    progress: TextIO | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> RunSummary:
    """Write ``copies`` SAS-augmented versions of every pair in ``in_dir`` into ``out_dir``.

    Resumable (finished outputs are kept), atomic per file, identical for any ``workers``.
    ``progress``: a stream for a progress line (e.g. ``sys.stderr``), or None for silence.
    ``max_pixels``: the pixel cap of an input file (checked from its header before decoding).
    Raises :class:`JobError` when it cannot start (:class:`UnsafePath` for overlapping folders or
    links, :class:`ConfigError` when the config cannot be applied to an input); unusable pairs are
    skipped and listed in the summary's ``skipped``.
    """
    start = time.perf_counter()
    config = SASConfig() if config is None else config
    for name, value in (("copies", copies), ("workers", workers), ("max_pixels", max_pixels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise JobError(f"{name}: expected an integer >= 1, got {value!r}")
    try:
        seed_to_key(seed)
    except (ValueError, TypeError) as exc:
        raise JobError(str(exc)) from None
    root = Path(in_dir)
    if not root.is_dir():
        raise JobError(f"input folder {shown(root)} does not exist or is not a folder")
    tree = prepare_output(root, Path(out_dir))
    pairs, problems = find_pairs(root)
    if not pairs:
        hint = f" ({len(problems)} file(s) did not pair, e.g. {problems[0]})" if problems else ""
        raise JobError(
            f"no image/mask pairs found in {shown(root)}{hint}; expected images/ + masks/ folders with matching "
            f"names, or <name>.png beside <name>_mask.png"
        )
    if len(pairs) * copies > 1 << 32:
        raise JobError(f"{len(pairs)} pairs x {copies} copies exceed the 2**32 sample ids")
    usable = _usable_pairs(root, tree.root, pairs, problems)
    resolved = backend_name(backend)
    created = _check_run_file(tree, root, pairs, copies, seed, config, resolved)

    expected = {output_paths(p.stem, k): (i, k) for i, p in enumerate(pairs) for k in range(copies)}
    done = _rebuild_manifest(tree, expected)
    todo: dict[int, list[int]] = {}
    for paths, (i, k) in expected.items():
        if paths not in done:
            todo.setdefault(i, []).append(k)
    for i in [i for i in todo if i not in usable]:
        del todo[i]  # pairs whose inputs are links into OUT: reported, never read
    n_tasks = sum(-(-len(ks) // TASK_COPIES) for ks in todo.values())

    def tasks() -> Iterator[_Task]:
        for i, ks in todo.items():
            for s in range(0, len(ks), TASK_COPIES):
                chunk = tuple(ks[s : s + TASK_COPIES])
                yield _Task(str(root), str(tree.root), pairs[i], i, copies, chunk, int(seed), config, resolved, max_pixels)

    bar = _Progress(len(expected), len(done), progress)
    skipped, written = list(problems), 0
    try:
        with tree.append(MANIFEST) as manifest:
            for task, (records, problem) in _execute(tasks(), n_tasks, workers):
                for record in records:
                    manifest.write(json.dumps(record) + "\n")
                manifest.flush()
                written += len(records)
                if problem is not None and problem not in skipped:  # a pair of several tasks fails in each
                    skipped.append(problem)
                    if progress is not None:
                        bar.clear()
                        print(f"sas-fast: skipped {problem}", file=progress)
                bar.advance(len(task.todo))
    except ConfigError:
        if created and not written and not done:  # nothing came of this config: leave OUT as it was
            for name in (RUN_FILE, MANIFEST):
                (tree.root / name).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    _rebuild_manifest(tree, expected)  # final form: sorted by sample id, whatever the finishing order
    return RunSummary(
        pairs=len(pairs), outputs=len(expected), written=written, already_done=len(done), skipped=sorted(skipped),
        backend=resolved, seconds=time.perf_counter() - start,
    )


def _usable_pairs(root: Path, out: Path, pairs: list[Pair], problems: list[str]) -> set[int]:
    """Indices of the pairs none of whose files is (a link to) a file inside the output tree."""
    usable = set()
    for i, pair in enumerate(pairs):
        linked = [rel for rel in (pair.image, *pair.masks) if inside(real(root / rel), out)]
        if linked:
            problems.append(f"{shown(linked[0])}: a link into the output folder; an output could replace it: skipped")
        else:
            usable.add(i)
    return usable


def _execute(tasks: Iterable[_Task], n_tasks: int, workers: int) -> Iterator[tuple[_Task, tuple[list, str | None]]]:
    """``(task, result)`` in task order: in this process, or a spawned pool (``4 * workers`` tasks in flight)."""
    if workers == 1 or n_tasks <= 1:
        for task in tasks:
            yield task, _run_task(task)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,))
    window: deque = deque()
    try:
        for task in tasks:
            window.append((task, pool.submit(_run_task, task)))
            if len(window) >= 4 * workers:
                task0, future = window.popleft()
                yield task0, future.result()
        while window:
            task0, future = window.popleft()
            yield task0, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_settings(root: Path, pairs: list[Pair], copies: int, seed: int, config: SASConfig, backend: str) -> dict:
    listing = json.dumps([[p.image, list(p.masks)] for p in pairs])  # unambiguous for any name
    return {
        "sas_fast": __version__,
        "in_dir": str(real(root)),
        "seed": int(seed),
        "copies": int(copies),
        "backend": backend,
        "config": config.to_dict(),
        "pairs": len(pairs),
        "pairs_sha256": hashlib.sha256(listing.encode("ascii")).hexdigest(),
    }


def _check_run_file(
    tree: OutputTree, root: Path, pairs: list[Pair], copies: int, seed: int, config: SASConfig, backend: str
) -> bool:
    """Record the run's settings in OUT (True), or check that a resumed run uses the same ones (False)."""
    settings = _run_settings(root, pairs, copies, seed, config, backend)
    path = tree.root / RUN_FILE
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(previous, dict):
                raise ValueError(f"expected a JSON object, got {type(previous).__name__}")
        except (OSError, ValueError, RecursionError) as exc:
            raise JobError(f"{shown(path)}: unreadable run record ({_reason(exc)}); use a new output folder") from None
        # The input folder may move; what must match is what the outputs depend on.
        keys = ("seed", "copies", "backend", "config", "pairs", "pairs_sha256")
        differ = [k for k in keys if previous.get(k) != json.loads(json.dumps(settings[k]))]
        if differ:
            detail = ", ".join(f"{k}: {previous.get(k)!r} then, {settings[k]!r} now" for k in differ if k != "pairs_sha256")
            if "pairs_sha256" in differ:
                detail += (", " if detail else "") + "the set of input pairs changed"
            raise JobError(
                f"{shown(tree.root)} holds outputs of a run with other settings ({shown(detail)}); "
                f"rerun with the same settings to resume, or use a new output folder"
            )
        return False
    tree.write(RUN_FILE, (json.dumps(settings, indent=1) + "\n").encode())
    return True


def _rebuild_manifest(tree: OutputTree, expected: dict[tuple[str, str], tuple[int, int]]) -> set[tuple[str, str]]:
    """Rewrite the manifest keeping one record per finished output; the finished outputs' paths.

    A record counts when it names an expected output and both of its files exist; lines cut short
    by a kill (or otherwise unreadable) are dropped.
    """
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for _, record in parse(tree.root / MANIFEST)[0]:
        paths = (record.get("image_out"), record.get("mask_out"))
        if (
            all(isinstance(path, str) for path in paths)
            and paths in expected
            and isinstance(record.get("sample_id"), int)
            and (tree.root / paths[0]).is_file()
            and (tree.root / paths[1]).is_file()
        ):
            kept[paths] = record
    ordered = sorted(kept.values(), key=lambda r: r["sample_id"])
    tree.write(MANIFEST, "".join(json.dumps(r) + "\n" for r in ordered).encode())
    return set(kept)


class _Progress:
    """A one-line progress report on a stream: redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, total: int, done: int, stream: TextIO | None) -> None:
        self.total, self.done, self.stream = total, done, stream
        self.start, self.first = time.perf_counter(), done
        self.tty = stream is not None and stream.isatty()
        self.last_shown, self.last_decile = 0.0, -1
        self.advance(0)

    def _line(self) -> str:
        rate = (self.done - self.first) / max(time.perf_counter() - self.start, 1e-9)
        return f"sas-fast augment: {self.done}/{self.total} outputs ({100 * self.done // self.total}%), {rate:.1f}/s"

    def advance(self, n: int) -> None:
        self.done += n
        if self.stream is None:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self.last_shown >= 0.1 or self.done == self.total:
                self.stream.write("\r" + self._line())
                self.stream.flush()
                self.last_shown = now
        elif (decile := 10 * self.done // self.total) > self.last_decile:
            self.last_decile = decile
            print(self._line(), file=self.stream)

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
