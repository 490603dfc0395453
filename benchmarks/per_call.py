"""The per-call suite (issue 10): one image and one mask per call, as a ``Dataset.__getitem__`` makes them.

For each size of ``workloads.PER_CALL_SIZES`` every row of ``baselines.PER_CALL`` is built once,
warmed up with one round (JIT cache load, page faults), then timed for ``repeats`` rounds of
``calls`` calls in one process, the order of the rows rotating every round.  Everything runs on one
thread (Numba, sas_fast and OpenCV set to 1, said in the heading).  A row reports the median time
per call (and the min-max over the rounds), calls/s and its speed-up over albumentations; the
outputs of the first calls are checked against the NumPy reference (``baselines.check``).  The
``overhead`` rows are SAS transform minus bare kernel per backend (what a user pays around the
kernel on every call) and ``augment`` with prebuilt parameters minus bare kernel (the general
path's validation and plans), with the min-max of the per-round differences.

Used by ``python -m benchmarks.compare --suite per-call``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .baselines import PER_CALL, PerCall, Unavailable, check, reference_outputs, single_thread, skip_cell
from .workloads import PER_CALL_SIZES, Workload, make_samples

__all__ = ["CALLS", "Row", "run_suite", "samples_for", "time_size"]

#: Calls per timed round per image side (a round takes ~10-50 ms for the sas_fast rows).
CALLS = {32: 256, 256: 64, 512: 32, 1024: 16}
#: Distinct samples per size (calls cycle through them).
MAX_SAMPLES = 64
#: Pixels the checked calls should cover (small images: more of them, for the noise-strength check).
CHECK_PIXELS = 1 << 18
#: The row speed-ups are relative to.
BASE = "albumentations"


@dataclass
class Row:
    """One row's per-call times (seconds per call, one value per round)."""

    contender: PerCall
    call: object = None
    times: list[float] = field(default_factory=list)
    skipped: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _failure(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"FAILED: {type(exc).__name__}: {first[:200]}"


def _check_count(wl: Workload) -> int:
    """Samples whose outputs are checked: enough pixels for the noise-strength check, at least 4."""
    return max(1, min(wl.n, max(4, CHECK_PIXELS // (wl.images.shape[1] * wl.images.shape[2]))))


def samples_for(side: int, calls: int) -> int:
    """Distinct samples of a size: one per call, and enough for the checks, at most :data:`MAX_SAMPLES`."""
    return min(MAX_SAMPLES, max(calls, 4, CHECK_PIXELS // (side * side)))


def time_size(wl: Workload, calls: int, repeats: int, contenders: list[PerCall] = PER_CALL) -> list[Row]:
    """Build, warm up (one round), time ``repeats`` rotating rounds of ``calls`` calls, then check."""
    rows = [Row(c) for c in contenders]
    for row in rows:
        try:
            row.call = row.contender.build(wl)
        except Unavailable as exc:
            row.skipped = str(exc)
        except Exception as exc:  # noqa: BLE001  (a broken contender is a FAILED row, not a lost run)
            row.skipped = _failure(exc)
    for row in rows:  # warm-up round: JIT cache load, page faults
        if not row.skipped:
            try:
                for k in range(calls):
                    row.call(k)
            except Exception as exc:  # noqa: BLE001
                row.skipped = _failure(exc)
    live = [row for row in rows if not row.skipped]
    for r in range(repeats):
        shift = r % len(live) if live else 0
        for row in live[shift:] + live[:shift]:
            call = row.call
            start = time.perf_counter()
            for k in range(calls):
                call(k)
            row.times.append((time.perf_counter() - start) / calls)
    checked = _check_count(wl)
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for row in live:  # outputs of the first samples, copied (the buffers are reused)
        try:
            got = [tuple(np.array(a) for a in row.call(k)) for k in range(checked)]
        except Exception as exc:  # noqa: BLE001
            row.problems.append(_failure(exc))
            continue
        outputs[row.contender.key] = (np.stack([g[0] for g in got]), np.stack([g[1] for g in got]))
    # Checks per noise kind (the reference's Poisson tolerance applies to Poisson samples only).
    kinds = np.array([str(k) for k in wl.params.kind[:checked]])
    groups = []
    for kind in sorted(set(kinds)):
        idx = np.flatnonzero(kinds == kind)
        sub = wl.select(idx)
        groups.append((idx, sub, reference_outputs(sub)))
    for row in live:
        if row.contender.key not in outputs:
            continue
        image, mask = outputs[row.contender.key]
        for idx, sub, reference in groups:
            row.problems += check(row.contender, sub, (image[idx], mask[idx]), reference)
    return rows


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if abs(us) >= 100 else f"{us:.1f}"


def _table(wl: Workload, calls: int, rows: list[Row]) -> tuple[list[str], dict]:
    by_key = {row.contender.key: row for row in rows if not row.skipped}
    base = by_key.get(BASE)
    lines = [
        f"### per call, {wl.name}: one image + one mask per call ({calls} calls per round, {wl.n} distinct samples)",
        "",
        "| contender | µs / call (median) | min-max | calls/s | albumentations / this | check | note |",
        "|---|---|---|---|---|---|---|",
    ]
    raw = {"size": wl.name, "calls": calls, "samples": wl.n, "rows": [], "overhead": []}
    reasons: list[str] = []
    for row in rows:
        c = row.contender
        if row.skipped:
            lines.append(f"| {c.label} | {skip_cell(reasons, row.skipped)} | | | | | |")
            raw["rows"].append({"key": c.key, "skipped": row.skipped})
            continue
        med = row.median
        speedup = f"{base.median / med:.2f}x" if base else "n/a"
        verdict = "ok" if not row.problems else "FAIL: " + "; ".join(row.problems[:3])
        lines.append(
            f"| {c.label} | {_us(med)} | {_us(min(row.times))}-{_us(max(row.times))} | {1 / med:,.0f} | {speedup} | "
            f"{verdict} | {c.note} |"
        )
        raw["rows"].append(
            {"key": c.key, "role": c.role, "backend": c.backend, "times_s": row.times, "median_s": med,
             "calls_per_s": 1 / med, "problems": row.problems}
        )
    for backend in dict.fromkeys(c.backend for c in (row.contender for row in rows) if c.backend):
        parts = {role: by_key.get(f"{prefix}-{backend}") for role, prefix in
                 (("transform", "sas"), ("augment", "augment"), ("kernel", "kernel"))}
        for label, a, b, what in (
            ("overhead µs: SAS transform − bare kernel", "transform", "kernel",
             "all a user pays around the kernel: drawing the params, input checks, outputs (the one-sample path)"),
            ("overhead µs: augment, prebuilt params − bare kernel", "augment", "kernel",
             "sas_fast.augment's validation, plans, launch records and dispatch"),
        ):
            if parts[a] is None or parts[b] is None:
                continue
            diff = parts[a].median - parts[b].median
            rounds = [x - y for x, y in zip(parts[a].times, parts[b].times)]
            spread = f"{_us(min(rounds))} to {_us(max(rounds))}"  # per-round differences: noise shows as a wide range
            lines.append(f"| {label} ({backend}) | {_us(diff)} | {spread} | | | | {what} |")
            raw["overhead"].append({"backend": backend, "what": f"{a}-{b}", "median_s": diff, "rounds_s": rounds})
    lines.append("")
    lines += [f"[{i}] {reason}" for i, reason in enumerate(reasons, 1)]
    return lines + [""], raw


def run_suite(
    sizes: tuple[tuple[int, str], ...] = PER_CALL_SIZES,
    *,
    repeats: int = 7,
    calls_divisor: int = 1,
    calls: int | None = None,
    contenders: list[PerCall] = PER_CALL,
) -> list[dict]:
    """Print the per-call tables (Markdown, one per ``(side, dtype)`` of ``sizes``); their raw numbers.

    ``calls`` fixes the calls per round (else :data:`CALLS` divided by ``calls_divisor``).
    """
    raws = []
    with single_thread() as threads:
        print(
            f"## Per call\n\nSingle thread ({threads or 'nothing to set'}); {repeats} timed rounds after one warm-up "
            "round, row order rotating each round; sas_fast rows: one set per compiled backend of "
            "sas_fast.backends.BACKENDS. SASConfig() draws speckle for half the samples and Poisson for the other "
            "half, inside the pasted mask only.\n",
            flush=True,
        )
        for side, dtype in sizes:
            n_calls = calls or max(8, CALLS.get(side, 16) // calls_divisor)
            wl = make_samples(side, dtype, n=samples_for(side, n_calls))
            rows = time_size(wl, n_calls, repeats, contenders)
            lines, raw = _table(wl, n_calls, rows)
            raw["dtype"], raw["side"] = dtype, side
            raws.append(raw)
            print("\n".join(lines), flush=True)
    return raws
