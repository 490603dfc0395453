"""``python -m benchmarks.efficacy [--quick | --tiny] [--out DIR] [--report-only]``: the whole study."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.efficacy", description="Does SAS help small structures? (issue #14)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="preset", const="quick", help="a few minutes, 1 seed, 4 conditions")
    g.add_argument("--tiny", action="store_const", dest="preset", const="tiny", help="seconds: the CI smoke run")
    ap.set_defaults(preset="full")
    ap.add_argument("--out", type=Path, help="results folder (default benchmarks/efficacy/results[_quick|_tiny])")
    ap.add_argument("--report", type=Path, help="markdown report (default benchmarks/EFFICACY.md for the full study, else OUT/EFFICACY.md)")
    ap.add_argument("--png", type=Path, help="plot (default benchmarks/efficacy/efficacy.png for the full study, else OUT/efficacy.png)")
    ap.add_argument("--seeds", type=int, nargs="+", help="override the preset's seeds")
    ap.add_argument("--conditions", nargs="+", help="override the preset's conditions (names in study.CONDITIONS)")
    ap.add_argument("--steps", type=int, help="override the preset's training steps")
    ap.add_argument("--report-only", action="store_true", help="only regenerate the report and plot from existing results")
    args = ap.parse_args(argv)

    from .study import BY_NAME, PRESETS, run_study

    preset = PRESETS[args.preset]
    if args.seeds:
        preset = dataclasses.replace(preset, seeds=tuple(args.seeds))
    if args.conditions:
        bad = [c for c in args.conditions if c not in BY_NAME]
        if bad:
            ap.error(f"unknown condition(s) {bad}; known: {sorted(BY_NAME)}")
        preset = dataclasses.replace(preset, conditions=tuple(args.conditions))
    if args.steps:
        preset = dataclasses.replace(preset, steps=args.steps)
    full = args.preset == "full"
    out = args.out or HERE / ("results" if full else f"results_{args.preset}")
    md = args.report or (HERE.parent / "EFFICACY.md" if full else out / "EFFICACY.md")
    png = args.png or (HERE / "efficacy.png" if full else out / "efficacy.png")
    if not args.report_only:
        try:
            import torch  # noqa: F401
        except ImportError:
            print('the efficacy study needs torch: pip install -e ".[efficacy]"', file=sys.stderr)
            return 2
        command = "python -m benchmarks.efficacy " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        run_study(out, preset, command=command.strip(), log=lambda m: print(m, flush=True))
    if not (out / "study.json").exists():
        print(f"no results in {out}: run the study first", file=sys.stderr)
        return 2
    from .report import write

    write(out, md, png)
    print(f"report: {md}" + (f"\nplot:   {png}" if png.exists() else "\n(no plot: matplotlib is not installed)"))
    return 0


if __name__ == "__main__":
    # one core: the study is sized for it, and the machine may be shared (torch, NumPy and Numba are
    # imported inside main(), after this; not done on import, so a test process keeps its settings)
    for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
    raise SystemExit(main())
