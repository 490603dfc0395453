"""The run's records: ``OUT/params.jsonl`` (one JSON line per output) and ``OUT/sas_run.json``.

A record names the output files (``images/<stem>_sas<k>.png``, ``masks/<stem>_sas<k>.png``),
the input files, the copy ``k``, the sample id, the seed and the exact parameters
(:class:`~sas_fast.config.SASParams`), enough to regenerate the output without the config.

:func:`parse` reads a manifest line by line and says what is wrong with each bad line (cut short
by a kill, not JSON, not UTF-8); :func:`check_record` checks a record's fields before anything is
read or written for it: paths must be relative and stay inside their folder
(:func:`~sas_fast.folder.paths.relative_path`), and the output paths must be the ones the job
writes for that copy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..philox import seed_to_key
from .paths import relative_path, shown

__all__ = ["MANIFEST", "RUN_FILE", "Record", "check_record", "make_record", "output_paths", "parse"]

MANIFEST = "params.jsonl"
RUN_FILE = "sas_run.json"
_OUT_NAME = re.compile(r"(?P<folder>images|masks)/(?P<stem>.+)_sas(?P<copy>0|[1-9][0-9]*)\.png", re.DOTALL)
_IMAGE_OUT = re.compile(rb'"image_out"\s*:\s*"((?:[^"\\]|\\.)*)"')
_QUOTE = b'"'


def output_paths(stem: str, copy: int) -> tuple[str, str]:
    """Image and mask output paths, relative to OUT, of copy ``copy`` of the pair named ``stem``."""
    return f"images/{stem}_sas{copy}.png", f"masks/{stem}_sas{copy}.png"


def make_record(
    sample_id: int, copy: int, seed: int, image_in: str, masks_in: tuple[str, ...], stem: str, params: dict
) -> dict[str, Any]:
    image_out, mask_out = output_paths(stem, copy)
    return {
        "sample_id": int(sample_id),
        "copy": int(copy),
        "seed": int(seed),
        "image_in": image_in,
        "masks_in": list(masks_in),
        "image_out": image_out,
        "mask_out": mask_out,
        "params": params,
    }


def parse(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """``(line number, record)`` for each line of the manifest that is a JSON object; a message per other line.

    Blank lines are ignored; a missing manifest has no lines.
    """
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return records, problems
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                problem = None if isinstance(record, dict) else f"expected a JSON object, got {type(record).__name__}"
            except UnicodeDecodeError:
                problem = "not UTF-8 text"
            except RecursionError:
                problem = "JSON nested too deeply"
            except ValueError as exc:
                problem = f"not a JSON record ({shown(exc)})"
            if problem is not None and not raw.endswith(b"\n"):
                problem = "cut short (no end of line: the run was killed while writing it, or the file was truncated)"
            if problem is not None:
                problems.append(f"{_where(number, raw)}: {problem}")
                continue
            records.append((number, record))
    return records, problems


def _where(number: int, raw: bytes) -> str:
    """``params.jsonl line N``, with the output the line names when that much of it is readable."""
    where = f"{MANIFEST} line {number}"
    named = _IMAGE_OUT.search(raw)
    if named is not None:
        try:
            name = json.loads(_QUOTE + named[1] + _QUOTE)
            where += f" ({shown(name)})"
        except (ValueError, RecursionError):
            pass
    return where


@dataclass(frozen=True)
class Record:
    """A checked manifest record (``params`` still plain data: :meth:`SASParams.from_dict` reads it)."""

    sample_id: int
    copy: int
    seed: int
    image_in: str
    masks_in: tuple[str, ...]
    image_out: str
    mask_out: str
    params: dict[str, Any]


def _int(record: dict, key: str, lo: int, hi: int) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        raise ValueError(f"{key}: expected an integer in [{lo}, {hi}), got {shown(repr(value))[:80]}")
    return value


def check_record(record: dict[str, Any]) -> Record:
    """``record``'s fields checked (``ValueError`` naming the first bad key); see the module docstring."""
    missing = sorted({"sample_id", "copy", "seed", "image_in", "masks_in", "image_out", "mask_out", "params"} - set(record))
    if missing:
        raise ValueError(f"missing key(s) {missing}")
    sample_id = _int(record, "sample_id", 0, 1 << 32)
    copy = _int(record, "copy", 0, 1 << 32)
    seed = _int(record, "seed", 0, 1 << 64)
    seed_to_key(seed)
    image_in = relative_path(record["image_in"], "image_in")
    masks = record["masks_in"]
    if not isinstance(masks, list) or not masks:
        raise ValueError(f"masks_in: expected a non-empty list of relative paths, got {shown(repr(masks))[:80]}")
    masks_in = tuple(relative_path(m, "masks_in") for m in masks)
    image_out = relative_path(record["image_out"], "image_out")
    mask_out = relative_path(record["mask_out"], "mask_out")
    named = _OUT_NAME.fullmatch(image_out)
    if named is None or named["folder"] != "images" or int(named["copy"]) != copy:
        raise ValueError(f"image_out: expected images/<name>_sas{copy}.png, got {shown(image_out)}")
    if mask_out != output_paths(named["stem"], copy)[1]:
        raise ValueError(f"mask_out: expected {shown(output_paths(named['stem'], copy)[1])}, got {shown(mask_out)}")
    if not isinstance(record["params"], dict):
        raise ValueError(f"params: expected a JSON object, got {type(record['params']).__name__}")
    return Record(sample_id, copy, seed, image_in, masks_in, image_out, mask_out, record["params"])
