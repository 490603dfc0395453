"""Folders of image/mask pairs: discovery, reading, atomic writing, the ``sas-fast augment`` job, replay.

Layouts read (``find_pairs``), PNG / JPEG / TIFF / BMP, 8- or 16-bit, grey or colour:

* ``IN/images/<rel>.<ext>`` with ``IN/masks/<rel>.<ext>`` (or ``<rel>_mask.<ext>``): matching stems;
* anything else: ``<dir>/<name>.<ext>`` with ``<dir>/<name>_mask.<ext>`` beside it, in any
  subfolder (the breast-ultrasound BUSI layout); extra ``<name>_mask_<k>`` files (BUSI's second
  lesions) are merged into the first by a pixelwise maximum.

Masks keep their values: nearest-neighbour geometry copies labels unchanged, and noise goes to
every nonzero label (or the config's ``labels``).  Colour masks must have equal channels; an
image's alpha channel is dropped.  Outputs are always PNG (lossless, 16-bit capable).

The job (``augment_folder``) writes ``OUT/images/<rel>_sas<k>.png`` and ``OUT/masks/<rel>_sas<k>.png``
for copy ``k`` of each pair, ``OUT/params.jsonl`` (one JSON line per output, enough to replay it
without the config) and ``OUT/sas_run.json`` (the run's settings, checked when a run is resumed).
Sample ids: the pairs found, sorted by relative image path, get indices ``0..P-1``; copy ``k`` of
pair ``i`` has sample id ``i * copies + k``.  Every output depends only on ``(seed, sample id)``
and its inputs, so ``--workers`` never changes a byte.

Crash safety: each file is written to a temporary file in its folder and renamed into place
(``os.replace``), so a killed run leaves whole files or none (stray temporaries are removed on the
next run); a manifest line is appended only after both of its files are in place, and the
manifest is rebuilt (parsed, deduplicated, checked against the files) when a run resumes.  This
protects against killed processes, not power loss (files are not fsync'ed, for speed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from . import __version__
from .api import augment, pick_backend
from .backends import BACKENDS
from .config import SASConfig, SASParams
from .philox import seed_to_key

__all__ = [
    "JobError",
    "Pair",
    "PairError",
    "ReplaySummary",
    "RunSummary",
    "augment_folder",
    "find_pairs",
    "read_pair",
    "replay",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MANIFEST = "params.jsonl"
RUN_FILE = "sas_run.json"
TMP_PREFIX = ".sas_tmp_"
_MASK_NAME = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<extra>\d+))?$")


class JobError(Exception):
    """The job cannot start (bad input or output folder, settings that clash with OUT's run)."""


class PairError(Exception):
    """One pair cannot be used (unreadable file, shapes that differ); the job skips and reports it."""


@dataclass(frozen=True)
class Pair:
    """One image with its mask file(s), as POSIX paths relative to the input folder.

    ``stem`` (the relative image path without extension) names the outputs.
    """

    stem: str
    image: str
    masks: tuple[str, ...]


# ----------------------------------------------------------------------------- discovery


def _files(root: Path, exclude: Path | None) -> Iterator[Path]:
    """Image files under ``root``, skipping hidden names and the ``exclude`` folder."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield here / name


def find_pairs(in_dir: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> tuple[list[Pair], list[str]]:
    """The image/mask pairs under ``in_dir`` sorted by relative image path, and the problems found.

    Problems (``"<path>: <reason>"``) are images without a mask, masks without an image and
    ambiguous names (``a.png`` and ``a.jpg`` both present); those files are left out.  Files under
    ``exclude`` (e.g. the output folder inside the input folder) are ignored.
    """
    root = Path(in_dir)
    skip = None if exclude is None else Path(exclude).resolve()
    images: dict[str, list[str]] = {}  # stem -> image files
    masks: dict[str, list[tuple[int, str]]] = {}  # stem -> (extra-mask number, file); -1 for the first mask
    if (root / "images").is_dir() and (root / "masks").is_dir():
        for path in _files(root / "images", skip):
            images.setdefault(_stem(path, root / "images"), []).append(_rel(path, root))
        for path in _files(root / "masks", skip):
            stem = _stem(path, root / "masks")
            key, extra = (stem, -1) if stem in images else _mask_key(stem) or (stem, -1)
            masks.setdefault(key, []).append((extra, _rel(path, root)))
    else:
        for path in _files(root, skip):
            stem = _stem(path, root)
            named = _mask_key(stem)
            if named is None:
                images.setdefault(stem, []).append(_rel(path, root))
            else:
                masks.setdefault(named[0], []).append((named[1], _rel(path, root)))

    pairs, problems = [], []
    for stem, found in images.items():
        numbers = [extra for extra, _ in masks.get(stem, [])]
        if len(found) > 1:
            problems.append(f"{found[0]}: ambiguous, several images named {stem!r}: {', '.join(found)}")
        elif not numbers:
            problems.append(f"{found[0]}: missing mask (expected e.g. {stem}_mask.png)")
        elif len(set(numbers)) < len(numbers):
            problems.append(f"{found[0]}: ambiguous, several masks: {', '.join(m for _, m in sorted(masks[stem]))}")
        else:
            pairs.append(Pair(stem=stem, image=found[0], masks=tuple(m for _, m in sorted(masks[stem]))))
    for stem, found in masks.items():
        if stem not in images:
            problems.extend(f"{m}: mask without an image" for _, m in found)
    pairs.sort(key=lambda p: p.image)
    return pairs, sorted(problems)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _stem(path: Path, root: Path) -> str:
    """The path relative to ``root`` without its extension, POSIX style."""
    return path.relative_to(root).with_suffix("").as_posix()


def _mask_key(stem: str) -> tuple[str, int] | None:
    """``(image stem, extra-mask number or -1)`` for a mask name ``<stem>_mask[_<k>]``, else None."""
    head, _, name = stem.rpartition("/")
    match = _MASK_NAME.match(name)
    if match is None:
        return None
    image = f"{head}/{match['stem']}" if head else match["stem"]
    return image, -1 if match["extra"] is None else int(match["extra"])


# ----------------------------------------------------------------------------- reading and writing


def _decode(root: Path, rel: str) -> np.ndarray:
    try:
        data = np.fromfile(root / rel, dtype=np.uint8)  # not cv2.imread: it cannot say why, nor read every path
    except OSError as exc:
        raise PairError(f"{rel}: cannot read ({exc.strerror or exc})") from None
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None:
        raise PairError(f"{rel}: not a readable PNG/JPEG/TIFF/BMP image")
    if array.dtype not in (np.uint8, np.uint16):
        raise PairError(f"{rel}: {array.dtype} pixels are not supported; accepted: 8- or 16-bit")
    return array


def _read_image(root: Path, rel: str) -> np.ndarray:
    image = _decode(root, rel)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]  # alpha is not an intensity: dropped
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[..., 0]
    return np.ascontiguousarray(image)


def _read_mask(root: Path, rel: str) -> np.ndarray:
    mask = _decode(root, rel)
    if mask.ndim == 3:
        channels = mask[..., : 3 if mask.shape[2] == 4 else mask.shape[2]]
        if not (channels == channels[..., :1]).all():
            raise PairError(f"{rel}: colour mask with differing channels; expected a grey label image")
        mask = channels[..., 0]
    return np.ascontiguousarray(mask)


def read_pair(in_dir: str | os.PathLike, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """The image ``(H, W)`` / ``(H, W, C)`` (channels as stored, BGR) and its label mask ``(H, W)``.

    Several mask files are merged by a pixelwise maximum.  :class:`PairError` says what is wrong.
    """
    root = Path(in_dir)
    image = _read_image(root, pair.image)
    mask = _read_mask(root, pair.masks[0])
    for extra in pair.masks[1:]:
        more = _read_mask(root, extra)
        if more.shape != mask.shape:
            raise PairError(f"{extra}: mask is {_size(more)} but {pair.masks[0]} is {_size(mask)}")
        mask = np.maximum(mask, more)
    if image.shape[:2] != mask.shape:
        raise PairError(f"{pair.image}: image is {_size(image)} but mask {pair.masks[0]} is {_size(mask)}")
    return image, mask


def _size(a: np.ndarray) -> str:
    return f"{a.shape[0]}x{a.shape[1]} (HxW)"


def encode_png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {array.shape} and dtype {array.dtype}")
    return buf.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- the job


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


def output_paths(stem: str, copy: int) -> tuple[str, str]:
    """Image and mask output paths, relative to OUT, of copy ``copy`` of the pair named ``stem``."""
    return f"images/{stem}_sas{copy}.png", f"masks/{stem}_sas{copy}.png"


def _run_task(task: _Task) -> tuple[list[dict[str, Any]], str | None]:
    """Augment the pending copies of one pair and write their files; the manifest records, or a problem."""
    try:
        image, mask = read_pair(task.in_dir, task.pair)
    except PairError as exc:
        return [], str(exc)
    n = len(task.todo)
    sids = [task.index * task.copies + k for k in task.todo]
    masks = np.broadcast_to(mask, (n, *mask.shape))
    params = task.config.sample(n, seed=task.seed, sample_ids=sids, masks=masks)
    out_images, out_masks = augment(
        np.broadcast_to(image, (n, *image.shape)), masks, params, seed=task.seed, backend=task.backend
    )
    records = []
    for j, k in enumerate(task.todo):
        image_out, mask_out = output_paths(task.pair.stem, k)
        write_atomic(Path(task.out_dir, image_out), encode_png(out_images[j]))
        write_atomic(Path(task.out_dir, mask_out), encode_png(out_masks[j]))
        records.append(
            {
                "sample_id": sids[j],
                "copy": k,
                "seed": task.seed,
                "image_in": task.pair.image,
                "masks_in": list(task.pair.masks),
                "image_out": image_out,
                "mask_out": mask_out,
                "params": params[j].to_dict(),
            }
        )
    return records, None


def _init_worker(threads: int) -> None:
    # Read by Numba when its backend first loads in this (fresh, spawned) process: W workers share the cores.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))


def backend_name(backend: str) -> str:
    """The concrete backend ``backend`` stands for here for NumPy inputs (``"auto"`` resolved)."""
    module = pick_backend(backend, np.empty(0)).__name__
    return next(name for name, (mod, _) in BACKENDS.items() if mod == module)


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
) -> RunSummary:
    """Write ``copies`` SAS-augmented versions of every pair in ``in_dir`` into ``out_dir``.

    Resumable (finished outputs are kept), atomic per file, identical for any ``workers``.
    ``progress``: a stream for a progress line (e.g. ``sys.stderr``), or None for silence.
    Raises :class:`JobError` when it cannot start; unusable pairs are skipped and listed in the
    summary's ``skipped``.
    """
    start = time.perf_counter()
    config = SASConfig() if config is None else config
    if copies < 1 or workers < 1:
        raise JobError(f"copies and workers must be >= 1, got copies={copies}, workers={workers}")
    try:
        seed_to_key(seed)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    root = Path(in_dir)
    if not root.is_dir():
        raise JobError(f"input folder {str(root)!r} does not exist or is not a folder")
    out = Path(out_dir)
    if out.resolve() == root.resolve():
        raise JobError(f"the output folder must differ from the input folder {str(root)!r}")
    _check_writable(out)
    pairs, problems = find_pairs(root, exclude=out)
    if not pairs:
        raise JobError(
            f"no image/mask pairs found in {str(root)!r}; expected images/ + masks/ folders with matching names, "
            f"or <name>.png beside <name>_mask.png" + "".join(f"\n  {p}" for p in problems)
        )
    if len(pairs) * copies > 1 << 32:
        raise JobError(f"{len(pairs)} pairs x {copies} copies exceed the 2**32 sample ids")
    resolved = backend_name(backend)
    _check_run_file(out, root, pairs, copies, seed, config, resolved)
    _remove_temporaries(out)

    expected = {output_paths(p.stem, k): (i, k) for i, p in enumerate(pairs) for k in range(copies)}
    done = _rebuild_manifest(out, expected)
    todo: dict[int, list[int]] = {}
    for paths, (i, k) in expected.items():
        if paths not in done:
            todo.setdefault(i, []).append(k)
    tasks = [
        _Task(str(root), str(out), pairs[i], i, copies, tuple(ks), int(seed), config, resolved) for i, ks in todo.items()
    ]
    bar = _Progress(len(expected), len(done), progress)
    skipped, written = list(problems), 0
    with (out / MANIFEST).open("a", encoding="utf-8") as manifest:
        for task, (records, problem) in zip(tasks, _execute(tasks, workers)):
            for record in records:
                manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            written += len(records)
            if problem is not None:
                skipped.append(problem)
                if progress is not None:
                    bar.clear()
                    print(f"sas-fast: skipped {problem}", file=progress)
            bar.advance(len(task.todo))
    bar.close()
    _rebuild_manifest(out, expected)  # final form: sorted by sample id, whatever the finishing order
    return RunSummary(
        pairs=len(pairs), outputs=len(expected), written=written, already_done=len(done), skipped=sorted(skipped),
        backend=resolved, seconds=time.perf_counter() - start,
    )


def _execute(tasks: list[_Task], workers: int) -> Iterable[tuple[list[dict[str, Any]], str | None]]:
    """Results of ``tasks`` in order: in this process, or a spawned process pool for ``workers > 1``."""
    if workers == 1 or len(tasks) <= 1:
        return map(_run_task, tasks)
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,))

    def results() -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        with pool:
            yield from pool.map(_run_task, tasks)

    return results()


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=TMP_PREFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise JobError(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}") from None


def _run_settings(root: Path, pairs: list[Pair], copies: int, seed: int, config: SASConfig, backend: str) -> dict:
    listing = "\n".join(f"{p.image}\t{','.join(p.masks)}" for p in pairs)
    return {
        "sas_fast": __version__,
        "in_dir": str(root.resolve()),
        "seed": int(seed),
        "copies": int(copies),
        "backend": backend,
        "config": config.to_dict(),
        "pairs": len(pairs),
        "pairs_sha256": hashlib.sha256(listing.encode()).hexdigest(),
    }


def _check_run_file(
    out: Path, root: Path, pairs: list[Pair], copies: int, seed: int, config: SASConfig, backend: str
) -> None:
    """Record the run's settings in OUT, or check that a resumed run uses the same ones."""
    settings = _run_settings(root, pairs, copies, seed, config, backend)
    path = out / RUN_FILE
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JobError(f"{path}: unreadable run record ({exc}); use a new output folder") from None
        # The input folder may move; what must match is what the outputs depend on.
        keys = ("seed", "copies", "backend", "config", "pairs", "pairs_sha256")
        differ = [k for k in keys if previous.get(k) != json.loads(json.dumps(settings[k]))]
        if differ:
            detail = ", ".join(f"{k}: {previous.get(k)!r} then, {settings[k]!r} now" for k in differ if k != "pairs_sha256")
            if "pairs_sha256" in differ:
                detail += (", " if detail else "") + "the set of input pairs changed"
            raise JobError(
                f"{str(out)!r} holds outputs of a run with other settings ({detail}); "
                f"rerun with the same settings to resume, or use a new output folder"
            )
        return
    write_atomic(path, (json.dumps(settings, indent=1) + "\n").encode())


def _remove_temporaries(out: Path) -> None:
    for path in out.rglob(TMP_PREFIX + "*"):
        path.unlink(missing_ok=True)


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    """The parseable records of a manifest (a line cut short by a kill is dropped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _rebuild_manifest(out: Path, expected: dict[tuple[str, str], tuple[int, int]]) -> set[tuple[str, str]]:
    """Rewrite the manifest keeping one record per finished output; the finished outputs' paths.

    A record counts when it names an expected output and both of its files exist.
    """
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    for record in _read_manifest(out / MANIFEST):
        paths = (record.get("image_out"), record.get("mask_out"))
        if paths in expected and (out / paths[0]).is_file() and (out / paths[1]).is_file():
            kept[paths] = record
    ordered = sorted(kept.values(), key=lambda r: r["sample_id"])
    write_atomic(out / MANIFEST, "".join(json.dumps(r) + "\n" for r in ordered).encode())
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


# ----------------------------------------------------------------------------- replay


@dataclass
class ReplaySummary:
    """What :func:`replay` found: outputs regenerated, and those whose bytes differ or are missing."""

    outputs: int
    differ: list[str] = field(default_factory=list)


def replay(
    out_dir: str | os.PathLike,
    *,
    in_dir: str | os.PathLike | None = None,
    into: str | os.PathLike | None = None,
    backend: str | None = None,
) -> ReplaySummary:
    """Regenerate every output listed in ``out_dir/params.jsonl`` from its recorded parameters.

    Uses only the manifest records (inputs, seed, sample id, the :class:`SASParams`), not the
    config.  ``in_dir`` defaults to the run's recorded input folder and ``backend`` to its
    recorded backend.  With ``into``, the regenerated files are written there (same relative
    paths); otherwise they are compared byte for byte with the files in ``out_dir`` and the
    differing or missing ones listed in the summary.
    """
    out = Path(out_dir)
    try:
        run = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobError(f"{out}: not a sas-fast output folder ({RUN_FILE}: {exc})") from None
    root = Path(run["in_dir"] if in_dir is None else in_dir)
    name = run["backend"] if backend is None else backend
    records = _read_manifest(out / MANIFEST)
    summary = ReplaySummary(outputs=len(records))
    for record in records:
        pair = Pair(stem="", image=record["image_in"], masks=tuple(record["masks_in"]))
        try:
            image, mask = read_pair(root, pair)
        except PairError as exc:
            summary.differ.append(f"{record['image_out']}: input unreadable ({exc})")
            continue
        params = SASParams.from_dict(record["params"])
        out_image, out_mask = augment(image[None], mask[None], params, seed=record["seed"], backend=name)
        for rel, array in ((record["image_out"], out_image[0]), (record["mask_out"], out_mask[0])):
            data = encode_png(array)
            if into is not None:
                write_atomic(Path(into, rel), data)
            elif not (out / rel).is_file() or (out / rel).read_bytes() != data:
                summary.differ.append(rel)
    return summary
