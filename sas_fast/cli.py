"""The ``sas-fast`` command (also ``python -m sas_fast``): augment, replay, demo, bench.

Exit codes: 0 done; 1 done, but some inputs were skipped (listed on stderr) or a replay differed;
2 the command could not run (bad arguments, missing input folder, unwritable output folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from . import __version__
from .backends import BACKENDS, BackendUnavailable
from .config import SASConfig

__all__ = ["main"]

BACKEND_CHOICES = ["auto", *BACKENDS]


class _Usage(Exception):
    """A problem with the command line or its files: printed as ``sas-fast: error: ...``, exit 2."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sas-fast", description="Fast, reproducible SAS augmentation (scale simulation + in-mask noise)."
    )
    parser.add_argument("--version", action="version", version=f"sas-fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    aug = sub.add_parser(
        "augment",
        help="write augmented copies of a folder of image/mask pairs",
        description=(
            "Augment every image/mask pair in IN (images/ + masks/ with matching names, or <name>.png beside "
            "<name>_mask.png as in BUSI) and write OUT/images/<name>_sas<k>.png, OUT/masks/<name>_sas<k>.png and "
            "OUT/params.jsonl. Copy k of the i-th pair (pairs sorted by relative path) has sample id "
            "i * copies + k. Rerunning resumes; the same seed gives byte-identical outputs for any --workers."
        ),
    )
    aug.add_argument("input", metavar="IN", type=Path, help="input folder")
    aug.add_argument("output", metavar="OUT", type=Path, help="output folder (created if missing)")
    aug.add_argument("--copies", type=_positive, default=1, help="augmented copies per pair (default 1)")
    aug.add_argument("--seed", type=int, default=0, help="run seed, 0 <= seed < 2**64 (default 0)")
    aug.add_argument("--config", type=Path, help="SASConfig as a JSON object (read as data), e.g. "
                     '{"scale_range": [0.3, 0.8], "noise": {"speckle": 1}}')
    aug.add_argument("--workers", type=_positive, default=1, help="processes (default 1)")
    aug.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="compute backend (default auto)")
    aug.add_argument("--quiet", action="store_true", help="no progress line")

    rep = sub.add_parser(
        "replay",
        help="regenerate a run's outputs from its params.jsonl and check them byte for byte",
        description="Regenerate every output listed in OUT/params.jsonl from the recorded parameters; by default "
        "compare with the files in OUT (exit 1 if any differ), with --into write them to another folder.",
    )
    rep.add_argument("output", metavar="OUT", type=Path, help="a folder written by `sas-fast augment`")
    rep.add_argument("--input", type=Path, help="input folder (default: the one recorded in OUT/sas_run.json)")
    rep.add_argument("--into", type=Path, help="write the regenerated files here instead of comparing")
    rep.add_argument("--backend", choices=BACKEND_CHOICES, help="backend (default: the one the run used)")

    demo = sub.add_parser(
        "demo",
        help="augment the bundled sample images, save a picture grid and report the speed",
        description="Run SAS on the bundled ultrasound samples with the fastest backend here, write a PNG grid "
        "(original and augmented copies, mask contours drawn) and print what was done and how fast.",
    )
    demo.add_argument("--out", type=Path, default=Path("sas_demo"), help="output folder (default ./sas_demo)")
    demo.add_argument("--limit", type=_positive, help="use only the first N samples")
    demo.add_argument("--copies", type=_positive, default=3, help="augmented copies shown per sample (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    demo.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                      help="backend (default: the fastest available)")

    sub.add_parser(
        "bench",
        help="run the benchmark comparison table (needs a source checkout; arguments go to benchmarks.compare)",
        add_help=False,  # `sas-fast bench --help` shows benchmarks.compare's own help
    )
    return parser


def _load_config(path: Path | None) -> SASConfig:
    if path is None:
        return SASConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Usage(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise _Usage(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _Usage(f"--config {path}: expected a JSON object of SASConfig fields, got {type(data).__name__}")
    try:
        return SASConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise _Usage(f"--config {path}: {exc}") from None


def _augment(args: argparse.Namespace) -> int:
    from .io import augment_folder

    config = _load_config(args.config)
    summary = augment_folder(
        args.input, args.output, copies=args.copies, seed=args.seed, config=config, workers=args.workers,
        backend=args.backend, progress=None if args.quiet else sys.stderr,
    )
    missing = summary.outputs - summary.written - summary.already_done
    print(
        f"sas-fast augment: {summary.written} outputs written, {summary.already_done} already done"
        + (f", {missing} not written (inputs skipped)" if missing else "")
        + f"; {summary.pairs} pairs x {args.copies} copies; {summary.seconds:.1f} s, backend {summary.backend!r}; "
        f"manifest {args.output / 'params.jsonl'}"
    )
    if summary.skipped:
        print(f"sas-fast augment: skipped {len(summary.skipped)} input(s):", file=sys.stderr)
        for problem in summary.skipped:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    from .io import replay

    summary = replay(args.output, in_dir=args.input, into=args.into, backend=args.backend)
    if args.into is not None:
        print(f"sas-fast replay: {summary.outputs} outputs regenerated into {args.into}")
    else:
        print(f"sas-fast replay: {summary.outputs} outputs regenerated, {len(summary.differ)} differ")
    for rel in summary.differ:
        print(f"  differs: {rel}", file=sys.stderr)
    return 1 if summary.differ else 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, limit=args.limit, copies=args.copies, seed=args.seed, backend=args.backend, stream=sys.stdout)
    return 0


def _bench(args: argparse.Namespace, extra: list[str]) -> int:
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "benchmarks" / "compare.py").is_file():
        raise _Usage(
            "bench needs a source checkout (benchmarks/ is not installed with the package): "
            "git clone the repository, pip install -e '.[test]', then run `sas-fast bench` inside it"
        )
    return subprocess.call([sys.executable, "-m", "benchmarks.compare", *extra], cwd=checkout)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from .io import JobError

    commands = {"augment": _augment, "replay": _replay, "demo": _demo}
    try:
        return _bench(args, extra) if args.command == "bench" else commands[args.command](args)
    except (_Usage, JobError, BackendUnavailable) as exc:
        print(f"sas-fast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sas-fast: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. a full disk mid-run: finished files are complete (atomic writes)
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"sas-fast: error: {exc.strerror or exc}{where}; finished outputs are kept, "
            "fix the cause and rerun the same command to resume",
            file=sys.stderr,
        )
        return 2
