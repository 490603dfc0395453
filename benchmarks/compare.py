"""The CPU comparison tables: ``python -m benchmarks.compare [--suite S ...] [--quick] [--workload W ...] [--json F]``.

Suites (``--suite``, default all, in this order):

* ``dataloader`` (``benchmarks.dataloader``): samples/s of a real ``torch.utils.data.DataLoader``
  pass over 256^2 and 512^2 uint8 samples, 0 and 2 forked workers, sas_fast's SAS transform vs
  albumentations per sample in ``__getitem__``; each contender in its own fresh process.
* ``per-call`` (``benchmarks.per_call``): one image + one mask per call, single thread, at 32^2,
  256^2, 512^2, 1024^2 uint8 and 512^2 float32: the SAS transform, ``augment`` with prebuilt
  parameters and the bare kernel per compiled backend, albumentations and an OpenCV pipeline,
  plus the overhead rows (transform minus kernel).
* ``batch``: the batch workloads (``benchmarks.workloads.VARIANTS``, ``--workload``).  Every
  contender of the registry (``benchmarks.baselines.CONTENDERS``) is built once (buffers, pools),
  warmed up once (JIT compile, page faults), then timed for ``--repeats`` rounds in one process,
  the order of the contenders rotating every round so drift hits them alike.  Each row reports the
  median time per batch, min-max, MPix/s of output, its time relative to sas_fast fused at all
  threads and its fraction of the memory-bandwidth ceiling, and each row's outputs are checked
  against the reference (``baselines.check``).  Unless ``--quick``, process-level rows follow:
  time to first result in a new process with a warm JIT cache, the same with an empty cache (JIT
  compile), and the peak memory of one batch per contender (each in its own subprocess).

The targets of the suites that ran close the output.  Writes Markdown to stdout (and raw numbers
to ``--json``).  Runs many minutes in full; ``--quick`` (fewer images, calls and repeats, no
process rows) a few minutes; ``--tiny`` is the CI smoke of the machinery (32^2 images, a handful
of calls, timings meaningless).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


from . import dataloader, per_call
from .baselines import ALL_THREADS, CONTENDERS, Contender, Runner, Unavailable, check, reference_outputs, skip_cell
from .workloads import PER_CALL_SIZES, QUICK_DIVISOR, VARIANTS, Workload, make_workload

ROOT = Path(__file__).resolve().parent.parent
#: Images of the reference outputs each row is checked against (the first ones of the batch).
CHECK_IMAGES = 16


@dataclass
class Row:
    """One contender's timings on one workload (seconds per call over ``images`` images)."""

    contender: Contender
    runner: Runner | None = None
    images: int = 0
    times: list[float] = field(default_factory=list)
    skipped: str = ""
    problems: list[str] = field(default_factory=list)

    def per_batch(self, n: int) -> tuple[float, float, float]:
        """Median, min and max seconds, scaled to a batch of ``n`` images."""
        k = n / self.images
        return statistics.median(self.times) * k, min(self.times) * k, max(self.times) * k


def _rows_for(wl: Workload, contenders: list[Contender], quick: bool) -> list[Row]:
    """Build each contender's runner (skipping with the reason when it cannot run)."""
    rows = []
    for contender in contenders:
        row = Row(contender)
        limit = contender.max_images
        if limit is not None and quick:
            limit = max(2, limit // QUICK_DIVISOR)
        part = wl if limit is None else wl.head(limit)
        try:
            row.runner = contender.build(part)
        except Unavailable as exc:
            row.skipped = str(exc)
        except Exception as exc:  # noqa: BLE001  (a broken contender is a FAILED row, not a lost run)
            row.skipped = _failure(exc)
        row.images = part.n
        rows.append(row)
    return rows


def _failure(exc: Exception) -> str:
    """One line for a contender that raised: FAILED, the exception type and its first line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"FAILED: {type(exc).__name__}: {first[:200]}"


def time_workload(wl: Workload, contenders: list[Contender], repeats: int, quick: bool) -> list[Row]:
    """Warm up every runner, then time ``repeats`` rounds in rotating order, then check outputs."""
    rows = _rows_for(wl, contenders, quick)
    outputs = {}
    for row in rows:  # warm-up: JIT compile, page faults, pools
        if not row.skipped:
            try:
                outputs[row.contender.key] = row.runner()
            except Exception as exc:  # noqa: BLE001
                row.skipped = _failure(exc)
    live = [row for row in rows if not row.skipped]
    for r in range(repeats):
        shift = r % len(live)
        for row in live[shift:] + live[:shift]:
            start = time.perf_counter()
            row.runner()
            row.times.append(time.perf_counter() - start)
    head = wl.head(min([CHECK_IMAGES] + [row.images for row in live]))
    reference = reference_outputs(head)
    for row in live:
        image, mask = outputs[row.contender.key]
        row.problems = check(row.contender, head, (image[: head.n], mask[: head.n]), reference)
    return rows


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def table(wl: Workload, rows: list[Row], note: str) -> tuple[str, dict]:
    """Markdown table of one workload and its raw numbers."""
    mpix = {}
    for row in rows:
        if not row.skipped:
            mpix[row.contender.key] = row.images * wl.canvas[0] * wl.canvas[1] / statistics.median(row.times) / 1e6
    base, ceiling = mpix.get("fused"), mpix.get("ceiling")
    lines = [
        f"### {wl.name}: {note} ({wl.n} images per batch, {wl.bytes_moved() / 1e6:,.0f} MB must move)",
        "",
        "| contender | threads | images timed | ms / batch (median) | min-max | MPix/s | time / fused | % of ceiling | check | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    raw = {"workload": wl.name, "n": wl.n, "bytes_moved": wl.bytes_moved(), "rows": []}
    reasons: list[str] = []
    for row in rows:
        c = row.contender
        if row.skipped:
            lines.append(f"| {c.label} | {c.threads} | - | {skip_cell(reasons, row.skipped)} | | | | | | |")
            raw["rows"].append({"key": c.key, "skipped": row.skipped})
            continue
        med, lo, hi = row.per_batch(wl.n)
        speed = mpix[c.key]
        scaled = "" if row.images == wl.n else " (scaled)"
        ratio = f"{base / speed:.2f}x" if base else "n/a"
        frac = f"{100 * speed / ceiling:.1f} %" if ceiling else "n/a"
        verdict = "ok" if not row.problems else "FAIL: " + "; ".join(row.problems)
        lines.append(
            f"| {c.label} | {c.threads} | {row.images} | {_fmt_ms(med)}{scaled} | {_fmt_ms(lo)}-{_fmt_ms(hi)} | "
            f"{speed:,.0f} | {ratio} | {frac} | {verdict} | {c.note} |"
        )
        raw["rows"].append(
            {"key": c.key, "threads": c.threads, "images": row.images, "times_s": row.times, "mpix_s": speed,
             "median_batch_s": med, "problems": row.problems}
        )
    lines.append("")
    lines += [f"[{i}] {reason}" for i, reason in enumerate(reasons, 1)]
    return "\n".join(lines + [""]), raw


# ----------------------------------------------------------------------------- targets

TARGETS = [  # (workload, contender, minimum speed-up of fused over it)
    ("W", "opencv", 2.0),
    ("W", "albumentations", 5.0),
    ("W", "reference", 20.0),
    ("poisson", "opencv", 2.0),
    ("W-area", "opencv", 1.0),  # issue 12: area at least as fast as the OpenCV INTER_AREA pipeline
]
COLD_TARGET_S = 1.0
#: Issue 10: per-call overhead (SAS transform - bare kernel) at 256^2 uint8, at most this many µs.
OVERHEAD_TARGET_US = 30.0
#: Issue 10: SAS transform per call at least this many times faster than albumentations, per side (uint8).
PER_CALL_TARGETS = {256: 2.0, 512: 2.5}
#: Issue 10: DataLoader samples/s, sas_fast over albumentations at 2 workers; sas_fast 2 workers over 0.
LOADER_TARGET = 1.5
SCALING_TARGET = 1.0
#: The backend whose per-call rows the targets read (what backend="auto" picks on a CPU).
TARGET_BACKEND = "numba"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _per_call_targets(per_call_raws: list[dict]) -> list[str]:
    lines = []
    by_size = {(raw["side"], raw["dtype"]): raw for raw in per_call_raws}
    raw = by_size.get((256, "uint8"))
    overhead = [
        o for o in (raw or {}).get("overhead", []) if o["backend"] == TARGET_BACKEND and o["what"] == "transform-kernel"
    ]
    name = (
        f"per-call overhead at 256^2 uint8 (SAS transform − bare kernel, {TARGET_BACKEND}) <= {OVERHEAD_TARGET_US:g} µs"
    )
    if overhead:
        us = overhead[0]["median_s"] * 1e6
        lines.append(f"| {name} | {us:,.1f} µs | {_verdict(us <= OVERHEAD_TARGET_US)} |")
    else:
        lines.append(f"| {name} | not measured | - |")
    for side, want in PER_CALL_TARGETS.items():
        rows = {r["key"]: r for r in by_size.get((side, "uint8"), {}).get("rows", [])}
        ours, theirs = rows.get(f"sas-{TARGET_BACKEND}", {}), rows.get(per_call.BASE, {})
        name = f"per call at {side}^2 uint8: SAS transform ({TARGET_BACKEND}) >= {want:g}x albumentations"
        if "median_s" in ours and "median_s" in theirs:
            got = theirs["median_s"] / ours["median_s"]
            lines.append(f"| {name} | {got:.2f}x | {_verdict(got >= want)} |")
        else:
            lines.append(f"| {name} | not measured | - |")
    return lines


def _loader_targets(loader_raws: list[dict]) -> list[str]:
    lines = []
    for raw in loader_raws:
        if "rows" not in raw:
            lines.append(f"| DataLoader targets | not measured ({raw.get('skipped', '?')}) | - |")
            continue
        speed = {(r["key"], r["workers"]): r["samples_per_s"] for r in raw["rows"] if "samples_per_s" in r}
        size = raw["size"]
        name = f"DataLoader {size}^2, 2 workers: sas_fast >= {LOADER_TARGET:g}x albumentations (samples/s)"
        if ("sas_fast", 2) in speed and (dataloader.BASE, 2) in speed:
            got = speed[("sas_fast", 2)] / speed[(dataloader.BASE, 2)]
            lines.append(f"| {name} | {got:.2f}x | {_verdict(got >= LOADER_TARGET)} |")
        else:
            lines.append(f"| {name} | not measured | - |")
        name = f"DataLoader {size}^2, sas_fast: 2 workers >= {SCALING_TARGET:g}x 0 workers (samples/s)"
        if ("sas_fast", 2) in speed and ("sas_fast", 0) in speed:
            got = speed[("sas_fast", 2)] / speed[("sas_fast", 0)]
            floor = ""
            if ("no-augmentation", 2) in speed:  # the DataLoader's own ceiling at 2 workers, in the same units
                ceiling = speed[("no-augmentation", 2)] / speed[("sas_fast", 0)]
                floor = f" (no augmentation at 2 workers: {ceiling:.2f}x)"
            lines.append(f"| {name} | {got:.2f}x{floor} | {_verdict(got >= SCALING_TARGET)} |")
        else:
            lines.append(f"| {name} | not measured | - |")
    return lines


def targets(
    raws: dict[str, dict], cold: float | None, per_call_raws: list[dict] | None = None,
    loader_raws: list[dict] | None = None, batch: bool = True,
) -> str:
    """The targets of the suites that ran (``per_call_raws`` / ``loader_raws`` None: that suite did not)."""
    lines = ["### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    if per_call_raws is not None:
        lines += _per_call_targets(per_call_raws)
    if loader_raws is not None:
        lines += _loader_targets(loader_raws)
    if batch:
        for name, key, want in TARGETS:
            rows = {r["key"]: r for r in raws.get(name, {}).get("rows", [])}
            fused, other = rows.get("fused"), rows.get(key)
            if not fused or not other or "mpix_s" not in fused or "mpix_s" not in other:
                lines.append(f"| fused {name} >= {want:g}x {key} | not measured | - |")
                continue
            got = fused["mpix_s"] / other["mpix_s"]
            lines.append(f"| fused {name} >= {want:g}x {key} | {got:.2f}x | {_verdict(got >= want)} |")
    if cold is not None:
        lines.append(
            f"| new process, first result < {COLD_TARGET_S:g} s (warm cache, wall) | {cold:.2f} s | "
            f"{_verdict(cold < COLD_TARGET_S)} |"
        )
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- process rows

_FIRST_RESULT = """
import json, time
marks = [time.perf_counter()]
import numpy as np
marks.append(time.perf_counter())
import sas_fast
marks.append(time.perf_counter())
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(2, 64, 64), dtype=np.uint8)
yy, xx = np.mgrid[0:64, 0:64]
masks = np.stack([((yy - 32) ** 2 + (xx - 32) ** 2 < 200).astype(np.uint8)] * 2)
params = sas_fast.SASConfig(noise={"speckle": 1.0, "poisson": 1.0}).sample(2, seed=1, masks=masks)
sas_fast.backends.load("numba")
marks.append(time.perf_counter())
sas_fast.augment(images, masks, params, seed=0, backend="numba")
marks.append(time.perf_counter())
steps = ["import numpy", "import sas_fast", "params + load numba backend", "first augment"]
print(json.dumps({"total": marks[-1] - marks[0], "steps": dict(zip(steps, [b - a for a, b in zip(marks, marks[1:])]))}))
"""

_PEAK_MEMORY = """
import json, sys
from benchmarks.baselines import by_key
from benchmarks.workloads import make_workload

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

contender = by_key(sys.argv[3])
wl = make_workload(sys.argv[1], n=int(sys.argv[2]))
contender.build(wl.head(2))()  # warm-up outside the measurement: JIT cache load, library start-up
run = contender.build(wl)
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark to the current RSS
run()
print(json.dumps({"before": before, "peak": status("VmHWM")}))
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run ``code`` in a fresh interpreter at the repository root; its stdout and the wall time."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return done.stdout.strip().splitlines()[-1], wall


def process_rows(memory_workload: str) -> tuple[str, dict]:
    """First-result times (warm and empty JIT cache) and peak memory per contender, in subprocesses."""
    lines = [
        "### Process-level rows",
        "",
        "| measurement | in-process: import + first augment (steps, s) | wall incl. interpreter start/exit |",
        "|---|---|---|",
    ]
    raw: dict = {}
    try:
        warm = [_python(_FIRST_RESULT) for _ in range(2)]  # the first fills the JIT cache if it is empty
        with tempfile.TemporaryDirectory() as cache:
            cold = _python(_FIRST_RESULT, env={"NUMBA_CACHE_DIR": cache})
        for name, (out, wall) in [
            ("new process, first result, warm JIT cache (2nd of 2 runs)", warm[1]),
            ("JIT compile: first result with an empty cache (NUMBA_CACHE_DIR=tmp)", cold),
        ]:
            inside = json.loads(out)
            steps = ", ".join(f"{step} {t:.3f}" for step, t in inside["steps"].items())
            lines.append(f"| {name} | {inside['total']:.3f} s ({steps}) | {wall:.3f} s |")
            raw[name] = {"wall": wall, **inside}
        raw["first_result_warm_s"] = {"wall": warm[1][1], "inside": json.loads(warm[1][0])["total"]}
    except RuntimeError as exc:
        lines.append(f"| first result | failed: {exc} | |")
    variant = VARIANTS[memory_workload]
    n = variant.n
    sample = make_workload(memory_workload, n=2)
    inout = sample.bytes_moved() / 2 * n
    lines += [
        "",
        f"Peak memory of one batch of {memory_workload} ({n} images; inputs + outputs {inout / 1e6:,.0f} MB), each in a "
        "fresh process after a 2-image warm-up and its buffers allocated: the rise of the resident high-water mark "
        "during the call (working memory beyond inputs and outputs).",
        "",
        "| contender | threads | extra peak RSS during the call | process peak RSS |",
        "|---|---|---|---|",
    ]
    raw["memory"] = {}
    for contender in CONTENDERS:
        if contender.role != "row":
            continue
        try:
            out, _ = _python(_PEAK_MEMORY, memory_workload, str(n), contender.key)
        except RuntimeError as exc:
            lines.append(f"| {contender.label} | {contender.threads} | skipped: {str(exc)[:120]} | |")
            continue
        mem = json.loads(out)
        extra = mem["peak"] - mem["before"]
        raw["memory"][contender.key] = mem
        lines.append(f"| {contender.label} | {contender.threads} | {extra / 1e6:,.1f} MB | {mem['peak'] / 1e6:,.0f} MB |")
    lines.append("")
    return "\n".join(lines), raw


# ----------------------------------------------------------------------------- main


def machine() -> str:
    """CPU model and core count (from ``lscpu``), OS and library versions."""
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        cpu = f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"
    except (OSError, subprocess.CalledProcessError):
        cpu = platform.processor() or "unknown CPU"
    versions = []
    for module in ("numpy", "numba", "cv2", "albumentations", "skimage", "torch"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} missing")
    return f"{cpu}; {platform.system()} {platform.release()}; Python {platform.python_version()}; " + ", ".join(versions)


def _load() -> str:
    """The 1/5/15-minute load averages: other work on the machine shows here (and in the spreads)."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sas_fast", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")


SUITES = ("dataloader", "per-call", "batch")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite", nargs="+", choices=["all", *SUITES], default=["all"],
        help="which suites to run (default all): dataloader, per-call, batch (the W/poisson/... workloads)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="fewer images / calls / samples, 5 repeats, no process rows (a few minutes for all suites)",
    )
    parser.add_argument(
        "--tiny", action="store_true",
        help="CI smoke of the per-call and dataloader machinery: 32^2 images, 4 calls, 8 loader samples, 2 repeats",
    )
    parser.add_argument("--workload", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", nargs="+", type=int, help="only rows using these thread counts (ratio bases kept)")
    parser.add_argument("--only", nargs="+", help="only these contender keys (ratio bases kept)")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 7, quick 5, tiny 2)")
    parser.add_argument("--no-process", action="store_true", help="skip the subprocess rows")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    return parser.parse_args(argv)


def _run_batch(args: argparse.Namespace, repeats: int) -> tuple[dict[str, dict], float | None, dict]:
    keep = {"fused", "ceiling"}
    contenders = [
        c for c in CONTENDERS
        if c.key in keep or ((args.threads is None or c.threads in args.threads) and (args.only is None or c.key in args.only))
    ]
    print(f"## Batch workloads\n\nthreads: 'all' = {ALL_THREADS}; numba.set_num_threads per row; cv2.setNumThreads(1) "
          f"inside pool threads; 1 warm-up call, then median of {repeats} rounds (contender order rotating each "
          "round)\n", flush=True)
    raws: dict[str, dict] = {}
    for name in args.workload:
        wl = make_workload(name, quick=args.quick or args.tiny)
        rows = time_workload(wl, contenders, repeats, args.quick or args.tiny)
        text, raws[name] = table(wl, rows, VARIANTS[name].note)
        print(text, flush=True)
        del wl, rows
    cold = None
    process: dict = {}
    if not (args.quick or args.tiny or args.no_process):
        text, process = process_rows("W")
        print(text, flush=True)
        cold = process.get("first_result_warm_s", {}).get("wall")
    return raws, cold, process


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    suites = SUITES if "all" in args.suite else [s for s in SUITES if s in args.suite]
    repeats = args.repeats or (2 if args.tiny else 5 if args.quick else 7)
    command = " ".join(["python -m benchmarks.compare", *(sys.argv[1:] if argv is None else argv)])
    print("# sas_fast CPU comparison\n")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- command: `{command}`")
    print(f"- suites: {', '.join(suites)}")
    print(f"- machine: {machine()}")
    print(f"- git revision: {git_revision()}")
    print(f"- load average at start (1/5/15 min): {_load()}\n", flush=True)
    loader_raws = per_call_raws = None
    raws: dict[str, dict] = {}
    cold = None
    process: dict = {}
    if "dataloader" in suites:  # first: its children are fresh processes anyway, this one has forked nothing
        if args.tiny:
            loader_raws = dataloader.run_suite((32,), n=8, batch=4, repeats=repeats, startup_timeout=300)
        else:
            loader_raws = dataloader.run_suite((256, 512), n=128, batch=16, repeats=repeats)
    if "per-call" in suites:
        if args.tiny:
            per_call_raws = per_call.run_suite(((32, "uint8"),), repeats=repeats, calls=4)
        else:
            per_call_raws = per_call.run_suite(PER_CALL_SIZES, repeats=repeats, calls_divisor=2 if args.quick else 1)
    if "batch" in suites:
        raws, cold, process = _run_batch(args, repeats)
    print(targets(raws, cold, per_call_raws, loader_raws, batch="batch" in suites))
    print(f"Load average at the end (1/5/15 min): {_load()}")
    if args.json:
        args.json.write_text(json.dumps(
            {"command": command, "suites": list(suites), "workloads": raws, "process": process,
             "per_call": per_call_raws, "dataloader": loader_raws},
            indent=1,
        ))


if __name__ == "__main__":
    main()
