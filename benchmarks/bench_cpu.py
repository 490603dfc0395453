"""pytest-benchmark over the contender registry, doubling as a correctness smoke test.

In the normal test run (``--benchmark-disable`` in pyproject) each test runs its contender once
on a SMALL workload and checks the outputs against the reference (``baselines.check``).  For
timings: ``python -m pytest benchmarks/bench_cpu.py --benchmark-enable --benchmark-group-by=param:workload``
(still the small workloads; the comparison table of record is ``python -m benchmarks.compare``).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from benchmarks import compare
from benchmarks.baselines import CONTENDERS, Unavailable, by_key, check, reference_outputs
from benchmarks.workloads import VARIANTS, Workload, make_workload
from sas_fast.geometry import thumbnail_sides

#: Images per smoke workload: enough masked pixels for the noise-strength check, small enough
#: that the whole file adds seconds, not minutes.
SMOKE_IMAGES = {"W": 8, "W-area": 8, "poisson": 8, "uint16": 4, "float32": 4, "1024": 2}


@lru_cache(maxsize=None)
def _workload(name: str) -> Workload:
    return make_workload(name, n=SMOKE_IMAGES[name])


@lru_cache(maxsize=None)
def _reference(name: str):
    return reference_outputs(_workload(name))


@pytest.mark.parametrize("workload", list(SMOKE_IMAGES))
@pytest.mark.parametrize("contender", CONTENDERS, ids=lambda c: c.key)
def test_contender(benchmark, contender, workload):
    """Each contender's batch, timed (when enabled), and its outputs checked against the reference."""
    wl = _workload(workload)
    try:
        run = contender.build(wl)
    except Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.extra_info["output_mpix"] = wl.output_pixels() / 1e6
    image, mask = benchmark(run)
    assert check(contender, wl, (image, mask), _reference(workload)) == []


def test_workload_is_the_issue_workload():
    """W: 512^2 uint8, masks covering 5-20 %, scales in [0.25, 1], speckle sigma 0.1, thumbnails inside."""
    wl = make_workload("W", n=16)
    assert wl.images.shape == (16, 512, 512) and wl.images.dtype == np.uint8
    coverage = (wl.masks != 0).mean(axis=(1, 2))
    assert coverage.min() >= 0.04 and coverage.max() <= 0.21
    assert wl.params.scale.min() >= 0.25 and wl.params.scale.max() <= 1.0
    assert set(wl.params.kind) == {"speckle"} and np.all(wl.params.sigma == 0.1)
    thumbs = thumbnail_sides(wl.params.crop[:, 2:], wl.params.scale[:, None])
    assert np.all(wl.params.offset >= 0) and np.all(wl.params.offset + thumbs <= 512)
    assert make_workload("poisson", n=2).kind == "poisson" and set(make_workload("poisson", n=2).params.kind) == {"poisson"}
    assert make_workload("W", quick=True).n == VARIANTS["W"].n // 8


def test_check_catches_a_wrong_pixel():
    wl = _workload("W")
    (image, mask), _ = _reference("W")
    bad = image.copy()
    bad[0, 0, 0] ^= 1
    assert check(by_key("reference"), wl, (image, mask), _reference("W")) == []
    assert any("differ" in p for p in check(by_key("reference"), wl, (bad, mask), _reference("W")))


def test_check_catches_missing_noise():
    """The OpenCV geometry stage passes as geometry but fails when held to the noisy pipeline."""
    wl = _workload("W")
    stage = by_key("opencv-geometry")
    outputs = stage.build(wl)()
    assert check(stage, wl, outputs, _reference("W")) == []
    as_pipeline = dataclasses.replace(stage, compares="geometry")
    assert any(p.startswith("noise:") for p in check(as_pipeline, wl, outputs, _reference("W")))


def test_compare_prints_checked_rows(capsys):
    """The comparison runs end to end (quick, one round) and its rows pass their checks."""
    compare.main(["--suite", "batch", "--quick", "--workload", "W", "--only", "opencv", "--repeats", "1", "--no-process"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| OpenCV") or line.startswith("| bandwidth")]
    assert len(rows) == 2 and all("| ok |" in line for line in rows)
    assert "### Targets" in out
