"""The ``sas-fast`` command (also ``python -m sas_fast``): augment, replay, demo, bench.

Every failure is one line on stderr (``sas-fast: error: ...``) naming the file, folder, option
or config key, never a traceback; the exit codes are :data:`EXIT_CODES` (also in ``--help``).
Errors are caught here by class: argument and config parsing (``ValueError``, ``TypeError``,
``LookupError``, ``ArithmeticError``, ``RecursionError``, JSON errors) and the folder job's
:class:`~sas_fast.folder.JobError` give code 2, ``OSError`` (e.g. a full disk) code 2 with
"finished outputs are kept", anything else is a bug in sas-fast: code 3, one line
(``SAS_FAST_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import warnings
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TextIO

from . import __version__
from .backends import BACKENDS, BackendUnavailable
from .config import SASConfig

__all__ = ["EXIT_CODES", "main"]

BACKEND_CHOICES = ["auto", *BACKENDS]
EXIT_DONE, EXIT_SKIPPED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_DONE: "done (replay: every listed output regenerated and identical)",
    EXIT_SKIPPED: "done, but some inputs were skipped (augment), or some outputs differ, are missing or "
    "unlisted, or manifest lines are bad (replay); each is listed on stderr",
    EXIT_USAGE: "the command could not run or continue: bad arguments, config or folders, overlapping or "
    "linked folders, an OS error such as a full disk (finished outputs are kept)",
    EXIT_BUG: "internal error: a bug in sas-fast (SAS_FAST_DEBUG=1 shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): rerun the same command to resume",
}
_EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items()) + (
    "\n  bench returns the exit code of benchmarks.compare"
)
#: The largest --config file read (a config is a few hundred bytes).
CONFIG_MAX_BYTES = 1 << 20
#: What parsing and checking config data raises (JSON errors are ValueError).
_DATA_ERRORS = (ValueError, TypeError, AttributeError, LookupError, ArithmeticError, RecursionError)


class _Usage(Exception):
    """A problem with the command line or its files: printed as ``sas-fast: error: ...``, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (raised, not printed with the usage, so that ``main`` returns 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise _Usage(f"{message} (see `{self.prog} --help`)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    from .folder import MAX_IMAGE_PIXELS

    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="sas-fast",
        description="Fast, reproducible SAS augmentation (scale simulation + in-mask noise).",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"sas-fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cap_help = (
        f"refuse input files whose header declares more pixels (width x height) than this, checked before "
        f"decoding (default {MAX_IMAGE_PIXELS})"
    )

    aug = sub.add_parser(
        "augment",
        help="write augmented copies of a folder of image/mask pairs",
        description=(
            "Augment every image/mask pair in IN (images/ + masks/ with matching names, or <name>.png beside "
            "<name>_mask.png as in BUSI) and write OUT/images/<name>_sas<k>.png, OUT/masks/<name>_sas<k>.png and "
            "OUT/params.jsonl. Copy k of the i-th pair (pairs sorted by relative path) has sample id "
            "i * copies + k. Rerunning resumes; the same seed gives byte-identical outputs for any --workers. "
            "IN and OUT must not overlap; sas-fast writes only below OUT and never through a symbolic link."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    aug.add_argument("input", metavar="IN", type=Path, help="input folder")
    aug.add_argument("output", metavar="OUT", type=Path, help="output folder (created if missing)")
    aug.add_argument("--copies", type=_positive, default=1, help="augmented copies per pair (default 1)")
    aug.add_argument("--seed", type=int, default=0, help="run seed, 0 <= seed < 2**64 (default 0)")
    aug.add_argument("--config", type=Path, help="SASConfig as a JSON object (read as data), e.g. "
                     '{"scale_range": [0.3, 0.8], "noise": {"speckle": 1}}')
    aug.add_argument("--workers", type=_positive, default=1, help="processes (default 1)")
    aug.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="compute backend (default auto)")
    aug.add_argument("--max-pixels", type=_positive, default=MAX_IMAGE_PIXELS, help=cap_help)
    aug.add_argument("--quiet", action="store_true", help="no progress line")

    rep = sub.add_parser(
        "replay",
        help="regenerate a run's outputs from its params.jsonl and check them byte for byte",
        description="Regenerate every output listed in OUT/params.jsonl from the recorded parameters; by default "
        "compare with the files in OUT, with --into write them to another folder. Differing, missing or "
        "unlisted outputs and bad manifest lines are listed on stderr (exit code 1).",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    rep.add_argument("output", metavar="OUT", type=Path, help="a folder written by `sas-fast augment`")
    rep.add_argument("--input", type=Path, help="input folder (default: the one recorded in OUT/sas_run.json)")
    rep.add_argument("--into", type=Path, help="write the regenerated files here instead of comparing")
    rep.add_argument("--backend", choices=BACKEND_CHOICES, help="backend (default: the one the run used)")
    rep.add_argument("--max-pixels", type=_positive, default=MAX_IMAGE_PIXELS, help=cap_help)

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


def _shown(text: object) -> str:
    from .folder.paths import shown

    return shown(text)


def _say(text: str, stream: TextIO) -> None:
    """Print one line, whatever the stream's encoding can hold (the rest backslash-escaped)."""
    try:
        print(text, file=stream)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream)


def _error(text: object) -> None:
    _say(f"sas-fast: error: {_shown(text)}", sys.stderr)


def _read_config_text(path: Path) -> str:
    """The text of a regular file of at most :data:`CONFIG_MAX_BYTES` (``OSError`` / ``ValueError`` otherwise)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = handle.read(CONFIG_MAX_BYTES + 1)
    if len(data) > CONFIG_MAX_BYTES:
        raise ValueError(f"larger than {CONFIG_MAX_BYTES} bytes; a config is a small JSON object")
    return data.decode("utf-8")


def _load_config(path: Path | None) -> SASConfig:
    """The ``--config`` file as an :class:`SASConfig`, checked as far as it can be without the images."""
    if path is None:
        return SASConfig()
    where = f"--config {_shown(path)}"
    try:
        text = _read_config_text(path)
    except OSError as exc:
        raise _Usage(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _Usage(f"{where}: not UTF-8 text") from None
    except ValueError as exc:
        raise _Usage(f"{where}: {exc}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise _Usage(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise _Usage(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _Usage(f"{where}: expected a JSON object of SASConfig fields, got {type(data).__name__}")
    try:
        return _checked_config(data)
    except _DATA_ERRORS as exc:
        reason = _shown(exc) or type(exc).__name__
        key = _blame(data)
        if key is not None and not reason.startswith(key):
            reason = f"{_shown(key)}: {reason}"
        raise _Usage(f"{where}: {reason}") from None


def _checked_config(data: dict) -> SASConfig:
    """``SASConfig.from_dict(data)``, sampled once on a small made-up mask so that values which only fail
    when used (overflows included) fail here, before any folder is touched, and checked JSON-able."""
    import numpy as np

    config = SASConfig.from_dict(data)
    labels = getattr(config, "labels", None)
    value = 1
    if labels:
        first = next(iter(labels))
        value = first if isinstance(first, int) and 0 < first < 2**31 else 1
    masks = np.zeros((8, 32, 32), np.int32)
    masks[:, 8:20, 10:24] = value
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        config.sample(8, seed=0, sample_ids=range(8), masks=masks)
    json.dumps(config.to_dict(), allow_nan=False)  # the run record holds it
    return config


def _blame(data: dict) -> str | None:
    """The config key a failure is due to: the first that fails alone, else the first whose removal cures it."""
    for key in data:
        try:
            _checked_config({key: data[key]})
        except _DATA_ERRORS:
            return key
    for key in data:
        try:
            _checked_config({k: v for k, v in data.items() if k != key})
            return key
        except _DATA_ERRORS:
            pass
    return None


def _augment(args: argparse.Namespace) -> int:
    from .folder import ConfigError, augment_folder

    config = _load_config(args.config)
    try:
        summary = augment_folder(
            args.input, args.output, copies=args.copies, seed=args.seed, config=config, workers=args.workers,
            backend=args.backend, progress=None if args.quiet else sys.stderr, max_pixels=args.max_pixels,
        )
    except ConfigError as exc:
        if args.config is None:
            raise
        raise _Usage(f"--config {_shown(args.config)}: {exc}") from None
    missing = summary.outputs - summary.written - summary.already_done
    _say(
        f"sas-fast augment: {summary.written} outputs written, {summary.already_done} already done"
        + (f", {missing} not written (inputs skipped)" if missing else "")
        + f"; {summary.pairs} pairs x {args.copies} copies; {summary.seconds:.1f} s, backend {summary.backend!r}; "
        f"manifest {_shown(args.output / 'params.jsonl')}",
        sys.stdout,
    )
    if summary.skipped:
        _say(f"sas-fast augment: skipped {len(summary.skipped)} input(s):", sys.stderr)
        for problem in summary.skipped:
            _say(f"  {_shown(problem)}", sys.stderr)
        return EXIT_SKIPPED
    return EXIT_DONE


def _replay(args: argparse.Namespace) -> int:
    from .folder import replay

    summary = replay(args.output, in_dir=args.input, into=args.into, backend=args.backend, max_pixels=args.max_pixels)
    counts = f"{summary.outputs} outputs regenerated"
    if args.into is not None:
        counts += f" into {_shown(args.into)}"
    else:
        counts += f", {len(summary.differ)} differ, {len(summary.missing)} missing"
    counts += f", {len(summary.problems)} problem(s)"
    if summary.expected is not None:
        counts += f" (the run was set up for {summary.expected} outputs)"
    _say(f"sas-fast replay: {counts}", sys.stdout)
    for label, items in (("differs", summary.differ), ("missing", summary.missing), ("problem", summary.problems)):
        for item in items:
            _say(f"  {label}: {_shown(item)}", sys.stderr)
    return EXIT_DONE if summary.ok else EXIT_SKIPPED


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, limit=args.limit, copies=args.copies, seed=args.seed, backend=args.backend, stream=sys.stdout)
    return EXIT_DONE


def _checkout() -> Path | None:
    """The sas_fast source checkout this module runs from (``benchmarks/`` beside the package), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        project = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if (root / "benchmarks" / "compare.py").is_file() and 'name = "sas_fast"' in project:
        return root
    return None


def _bench(extra: list[str]) -> int:
    checkout = _checkout()
    if checkout is None:
        raise _Usage(
            "bench needs a source checkout (benchmarks/ is not installed with the package): "
            "git clone the repository, pip install -e '.[test]', then run `sas-fast bench` inside it"
        )
    return subprocess.call([sys.executable, "-m", "benchmarks.compare", *extra], cwd=checkout)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code (:data:`EXIT_CODES`)."""
    try:
        with warnings.catch_warnings():
            # NumPy's overflow/invalid-value warnings are for library callers; the command reports
            # what it refuses in its own one-line messages.
            warnings.simplefilter("ignore", RuntimeWarning)
            return _main(argv)
    except KeyboardInterrupt:
        _say("sas-fast: interrupted; rerun the same command to resume", sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "bench":
            raise _Usage(f"unrecognized arguments: {' '.join(extra)} (see `sas-fast {args.command} --help`)")
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_DONE
    except _Usage as exc:
        _error(exc)
        return EXIT_USAGE

    from .folder import JobError

    commands = {"augment": _augment, "replay": _replay, "demo": _demo}
    try:
        return _bench(extra) if args.command == "bench" else commands[args.command](args)
    except (_Usage, JobError, BackendUnavailable) as exc:
        _error(exc)
        return EXIT_USAGE
    except BrokenProcessPool:
        _error("a worker process died (killed, e.g. out of memory); finished outputs are kept: rerun to resume, "
               "with fewer --workers if memory is short")
        return EXIT_USAGE
    except MemoryError:
        _error("out of memory; finished outputs are kept: rerun to resume, with fewer --workers or smaller inputs")
        return EXIT_USAGE
    except OSError as exc:  # e.g. a full disk mid-run: finished files are complete (atomic writes)
        where = f" ({_shown(exc.filename)})" if exc.filename else ""
        _error(
            f"{exc.strerror or exc}{where}; finished outputs are kept, fix the cause and rerun the same command to resume"
        )
        return EXIT_USAGE
    except Exception as exc:
        if os.environ.get("SAS_FAST_DEBUG"):
            raise
        _error(f"internal error ({type(exc).__name__}: {exc}); this is a bug in sas-fast, please report it "
               "(SAS_FAST_DEBUG=1 shows the traceback)")
        return EXIT_BUG
