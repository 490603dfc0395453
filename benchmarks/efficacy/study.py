"""The conditions, the presets, and the driver that trains every (condition, seed) once.

Each trained model writes one JSON (``<out>/runs/<condition>__seed<k>.json``) as soon as it is
tested, so an interrupted study keeps what it finished and a rerun of the same command resumes
(existing results are skipped).  The order is seed-major: every condition gets seed 0 before any
gets seed 1, so a partial study has all conditions with fewer seeds.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data import Sizes, Splits

# SASConfig fields as JSON data (SASConfig.from_dict); "sas": None = no augmentation.
DEFAULTS: dict[str, Any] = {}
CONDITIONS: list[dict[str, Any]] = [
    {"name": "none", "label": "no augmentation", "sas": None},
    {"name": "sas", "label": "SAS defaults (scale U(0.25,1), p=1; speckle/Poisson)", "sas": DEFAULTS},
    {"name": "scale_only", "label": "scale only (p_noise=0)", "sas": {"p_noise": 0.0}},
    {"name": "noise_only", "label": "noise only (p_scale=0)", "sas": {"p_scale": 0.0}},
    {"name": "p_scale_0.5", "label": "SAS, p_scale=0.5", "sas": {"p_scale": 0.5}},
    {"name": "scale_0.5", "label": "SAS, scale U(0.5,1)", "sas": {"scale_range": [0.5, 1.0]}},
    {"name": "scale_0.15", "label": "SAS, scale U(0.15,1)", "sas": {"scale_range": [0.15, 1.0]}},
    {"name": "mop_20", "label": "SAS, min_object_pixels=20", "sas": {"min_object_pixels": 20}},
    {"name": "fill_mean", "label": "SAS, canvas = image mean", "sas": DEFAULTS, "fill": "mean"},
    {"name": "oracle", "label": "oracle: trained on small lesions", "sas": None, "train": "small"},
    {"name": "mixed", "label": "mixed sizes (half small, half large)", "sas": None, "train": "mixed"},
]
BY_NAME = {c["name"]: c for c in CONDITIONS}


@dataclass(frozen=True)
class Preset:
    sizes: Sizes = field(default_factory=Sizes)
    steps: int = 1000
    eval_every: int = 100
    seeds: tuple[int, ...] = (0, 1, 2)
    conditions: tuple[str, ...] = tuple(c["name"] for c in CONDITIONS)


PRESETS = {
    # ~45 min of one core at ~75 ms/step (33 models x 1000 steps), more on a busy machine
    "full": Preset(),
    # a few minutes: the headline conditions, one seed, short training
    "quick": Preset(sizes=Sizes(train=512, val=64, test_small=120, test_large=60), steps=150, eval_every=50,
                    seeds=(0,), conditions=("none", "sas", "fill_mean", "oracle")),
    # the CI smoke test: seconds, checks the machinery, not the science
    "tiny": Preset(sizes=Sizes(train=32, val=16, test_small=24, test_large=12, image=32), steps=8, eval_every=4,
                   seeds=(0, 1), conditions=("none", "sas", "fill_mean", "oracle")),
}  # fmt: skip


def run_path(out: Path, name: str, seed: int) -> Path:
    return out / "runs" / f"{name}__seed{seed}.json"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__} (1 thread)"


def run_study(out: Path, preset: Preset, *, command: str, log=print) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    splits = Splits(preset.sizes)
    meta = {
        "preset": {**asdict(preset), "sizes": asdict(preset.sizes)},
        "command": command,
        "machine": machine(),
        "conditions": [BY_NAME[n] for n in preset.conditions],
    }
    t_gen = time.perf_counter()
    tests = {}
    for name in ("test_small", "test_large"):
        s = splits[name]
        tests[name] = {"sizes": np.round(s["sizes"], 5).tolist(), "kinds": s["kinds"].tolist()}
    meta["testsets"] = tests
    meta_path = out / "study.json"
    old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    fixed = ("sizes", "steps", "eval_every")  # what a run's result depends on (seeds/conditions may grow)
    if old and any(old["preset"].get(k) != meta["preset"][k] for k in fixed):
        raise SystemExit(f"{out} holds results of other sizes/steps ({old['preset']}); use another --out")
    meta["started"] = old.get("started", time.strftime("%Y-%m-%d %H:%M:%S"))
    meta["wall_seconds_before"] = old.get("wall_seconds", 0.0)
    _write_json(meta_path, meta)
    log(f"test sets generated in {time.perf_counter() - t_gen:.1f} s; results -> {out}")
    t0 = time.perf_counter()
    from .train import train_one

    for seed in preset.seeds:
        for name in preset.conditions:
            path = run_path(out, name, seed)
            if path.exists():
                continue
            result = train_one(BY_NAME[name], seed, splits, steps=preset.steps, eval_every=preset.eval_every, log=log)
            result["sizes"] = asdict(preset.sizes)
            _write_json(path, result)
            meta["wall_seconds"] = round(meta["wall_seconds_before"] + time.perf_counter() - t0, 1)
            meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            _write_json(meta_path, meta)
    log(f"study done: {time.perf_counter() - t0:.0f} s this invocation")
