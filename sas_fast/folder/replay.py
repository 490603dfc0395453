"""``sas-fast replay``: regenerate a run's outputs from ``OUT/params.jsonl`` alone and check them.

Every manifest line is accounted for: a line that is cut short or not a record, a record with a
bad field (paths must be relative and stay inside their folder, output names must be the job's),
an unreadable input, parameters that cannot be applied, an output listed twice, an output file
that is missing or differs, and an output file in ``OUT/images`` / ``OUT/masks`` that no record
lists are all reported (:class:`ReplaySummary`).  With ``into``, the regenerated files are written
there through :class:`~sas_fast.folder.atomic.OutputTree` (never outside it, never through a
link); ``into`` must not overlap the input folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..api import augment
from ..backends import BACKENDS
from ..config import SASParams
from .atomic import OutputTree
from .errors import JobError, PairError
from .imagefiles import MAX_IMAGE_PIXELS, encode_png, noise_channels, read_pair
from .job import APPLY_ERRORS, prepare_output
from .manifest import MANIFEST, RUN_FILE, check_record, parse
from .pairs import Pair
from .paths import inside, real, shown

__all__ = ["ReplaySummary", "replay"]


@dataclass
class ReplaySummary:
    """What :func:`replay` found.

    ``outputs``: records regenerated; ``differ`` / ``missing``: output files whose bytes differ /
    that do not exist (compare mode); ``problems``: everything else that is wrong (bad or cut-short
    manifest lines, unreadable inputs, unlisted output files), one line each; ``expected``: the
    outputs the run was set up for (pairs x copies; skipped inputs have none).
    """

    outputs: int = 0
    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    expected: int | None = None

    @property
    def ok(self) -> bool:
        return not (self.differ or self.missing or self.problems)


def _run_record(out: Path) -> dict:
    path = out / RUN_FILE
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(run, dict):
            raise ValueError(f"expected a JSON object, got {type(run).__name__}")
    except (OSError, ValueError, RecursionError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise JobError(f"{shown(out)}: not a sas-fast output folder ({RUN_FILE}: {shown(reason)})") from None
    return run


def replay(
    out_dir: str | os.PathLike,
    *,
    in_dir: str | os.PathLike | None = None,
    into: str | os.PathLike | None = None,
    backend: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> ReplaySummary:
    """Regenerate every output listed in ``out_dir/params.jsonl`` from its recorded parameters.

    Uses only the manifest records (inputs, seed, sample id, the :class:`SASParams`), not the
    config.  ``in_dir`` defaults to the run's recorded input folder and ``backend`` to its
    recorded backend.  With ``into``, the regenerated files are written there (same relative
    paths); otherwise they are compared byte for byte with the files in ``out_dir``.  Raises
    :class:`JobError` when it cannot start; everything else is reported in the summary.
    """
    out = Path(out_dir)
    run = _run_record(out)
    recorded = run.get("in_dir")
    if in_dir is None and not isinstance(recorded, str):
        raise JobError(f"{shown(out / RUN_FILE)}: no input folder recorded; pass it with --input")
    root = Path(recorded if in_dir is None else in_dir)
    if not root.is_dir():
        raise JobError(f"input folder {shown(root)} does not exist or is not a folder; pass it with --input")
    name = run.get("backend") if backend is None else backend
    if name not in BACKENDS:
        raise JobError(f"backend {shown(repr(name))} (from {RUN_FILE}) is not one of {sorted(BACKENDS)}; pass --backend")
    target = None if into is None else prepare_output(root, Path(into), what="--into folder")

    summary = ReplaySummary()
    if isinstance(run.get("pairs"), int) and isinstance(run.get("copies"), int):
        summary.expected = run["pairs"] * run["copies"]
    if not (out / MANIFEST).is_file():
        summary.problems.append(f"{MANIFEST}: missing")
    entries, bad_lines = parse(out / MANIFEST)
    summary.problems.extend(bad_lines)
    listed: set[str] = set()
    for number, raw in entries:
        where = f"{MANIFEST} line {number}"
        try:
            record = check_record(raw)
        except ValueError as exc:
            summary.problems.append(f"{where}: bad record: {shown(exc)}")
            continue
        where += f" ({shown(record.image_out)})"
        if record.image_out in listed or record.mask_out in listed:
            summary.problems.append(f"{where}: listed twice")
            continue
        listed |= {record.image_out, record.mask_out}
        inputs = (record.image_in, *record.masks_in)
        if target is not None and any(inside(real(root / rel), target.root) for rel in inputs):
            summary.problems.append(f"{where}: an input is a link into the --into folder; not regenerated")
            continue
        try:
            image, mask = read_pair(root, Pair(stem="", image=record.image_in, masks=record.masks_in), max_pixels=max_pixels)
        except PairError as exc:
            summary.problems.append(f"{where}: input unreadable ({exc})")
            continue
        try:
            params = SASParams.from_dict(record.params)
            if [int(s) for s in params.sample_ids] != [record.sample_id]:
                raise ValueError(f"params.sample_ids {params.sample_ids.tolist()} != sample_id {record.sample_id}")
            if tuple(params.canvas) != image.shape[:2]:
                raise ValueError(f"params.canvas {list(params.canvas)} but the input is {list(image.shape[:2])} (HxW)")
            out_image, out_mask = augment(
                image[None], mask[None], params, seed=record.seed, backend=name, channels=noise_channels(image)
            )
        except APPLY_ERRORS as exc:
            summary.problems.append(f"{where}: the recorded parameters cannot be applied ({shown(exc) or type(exc).__name__})")
            continue
        for rel, array in ((record.image_out, out_image[0]), (record.mask_out, out_mask[0])):
            data = encode_png(array)
            if target is not None:
                target.write(rel, data)
            elif not (out / rel).is_file():
                summary.missing.append(rel)
            elif (out / rel).read_bytes() != data:
                summary.differ.append(rel)
        summary.outputs += 1
    reader = OutputTree(out)
    for folder in ("images", "masks"):
        for rel in reader.files(folder):
            if rel not in listed:
                summary.problems.append(f"{shown(rel)}: not listed in {MANIFEST} (a lost or cut-short line, or an unfinished run)")
    return summary
