"""Smoke test of the efficacy study (benchmarks/efficacy, issue #14): the machinery, not the science.

Runs ``python -m benchmarks.efficacy --tiny`` in-process (32x32 images, a few dozen of them,
8 training steps, 4 conditions x 2 seeds: seconds), then checks that one JSON per trained model
was written, that the report and plot are produced, that ``--report-only`` regenerates the same
report from the results, that a rerun resumes instead of retraining, that a partial study still
gives a report that names what is missing, and that the Dataset's mean-fill path equals the
public transform at fill 0.  Skips, saying why, without torch (the ``efficacy`` extra).
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='the efficacy study needs torch: pip install -e ".[efficacy]"')

import sas_fast  # noqa: E402
from benchmarks.efficacy.__main__ import main  # noqa: E402
from benchmarks.efficacy.data import Sizes, Splits, make_dataset, sas_mean_fill  # noqa: E402
from benchmarks.efficacy.simulate import generate  # noqa: E402
from benchmarks.efficacy.study import PRESETS  # noqa: E402

_TIMING = re.compile(r"Speed: [0-9.]+ ms")  # the only line measured at report time


def _run(tmp_path, *extra):
    out, md, png = tmp_path / "res", tmp_path / "EFFICACY.md", tmp_path / "efficacy.png"
    assert main(["--tiny", "--out", str(out), "--report", str(md), "--png", str(png), *extra]) == 0
    return out, md, png


def test_tiny_study_end_to_end(tmp_path):
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out, md, png = _run(tmp_path)
    preset = PRESETS["tiny"]
    runs = sorted((out / "runs").glob("*.json"))
    assert len(runs) == len(preset.conditions) * len(preset.seeds)
    r = json.loads(runs[0].read_text())
    sizes = preset.sizes
    assert len(r["test"]["test_small"]["dice"]) == sizes.test_small
    assert len(r["test"]["test_large"]["found"]) == sizes.test_large
    assert all(0.0 <= d <= 1.0 for d in r["test"]["test_small"]["dice"])
    text = md.read_text()
    for name in preset.conditions:
        assert f"| `{name}`" in text
    for heading in ("## Reproduce", "## Design", "## Results", "## Conclusion", "## Budget and cuts", "Paired comparisons"):
        assert heading in text
    assert "python -m benchmarks.efficacy --tiny" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the plot is optional (the efficacy extra); the report says so
        assert not png.exists() and "no plot: matplotlib is not installed" in text
    else:
        assert png.stat().st_size > 1000 and "![Dice vs lesion size per condition](efficacy.png)" in text

    # --report-only regenerates the same report (apart from the simulator timing line)
    before = _TIMING.sub("", text)
    md.unlink()
    _run(tmp_path, "--report-only")
    assert _TIMING.sub("", md.read_text()) == before

    # a rerun resumes: nothing is retrained
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    _run(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps

    # a partial study (one run lost) still reports, and says what is missing
    (out / "runs" / "oracle__seed1.json").unlink()
    _run(tmp_path, "--report-only")
    assert "Fewer seeds than planned: oracle (1/2)" in md.read_text()
    assert time.perf_counter() - t0 < 60


def test_same_seed_same_model(tmp_path):
    """A (condition, seed) run is reproducible: data, SAS draws, init and order are all seeded."""
    from benchmarks.efficacy.study import BY_NAME
    from benchmarks.efficacy.train import train_one

    torch.set_num_threads(1)
    splits = Splits(PRESETS["tiny"].sizes)
    a = train_one(BY_NAME["sas"], 0, splits, steps=8, eval_every=4, log=lambda m: None)
    b = train_one(BY_NAME["sas"], 0, splits, steps=8, eval_every=4, log=lambda m: None)
    assert a["test"] == b["test"] and a["curve"] == b["curve"]


def test_simulator_is_seeded_and_masks_match():
    a = generate(3, seed=7, size_range=(0.25, 0.45))
    b = generate(3, seed=7, size_range=(0.25, 0.45))
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["masks"], b["masks"])
    assert a["images"].dtype == np.uint8 and set(np.unique(a["masks"])) <= {0, 1}
    # anechoic lesions are darker than their surroundings
    c = generate(4, seed=8, size_range=(0.3, 0.4), kind="anechoic")
    for img, msk in zip(c["images"], c["masks"]):
        assert img[msk == 1].mean() < img[msk == 0].mean() - 50


def test_mean_fill_path_equals_the_transform_at_fill_zero():
    split = generate(4, seed=3, size_range=(0.25, 0.45), config=None)
    for config in (sas_fast.SASConfig(), sas_fast.SASConfig(min_object_pixels=20, p_noise=0.5)):
        sas = sas_fast.SAS(config, seed=5)
        for sid in (0, 5, 11, 4 * 1000 + 2):
            i = sid % 4
            want = sas(image=split["images"][i], mask=split["masks"][i], sample_id=sid)
            img, msk = sas_mean_fill(sas, split["images"][i], split["masks"][i], sid, fill=0)
            assert np.array_equal(img, want["image"]) and np.array_equal(msk, want["mask"])


def test_dataset_with_epoch_sampler_gives_fresh_draws():
    split = Splits(Sizes(train=8, val=4, test_small=4, test_large=4, image=32))["train_large"]
    ds = make_dataset(split["images"], split["masks"], sas_fast.SASConfig(), seed=0)
    sampler = sas_fast.EpochSampler(ds, shuffle=True, seed=0)
    epochs = []
    for e in range(2):
        sampler.set_epoch(e)
        epochs.append({sid % len(ds): ds[sid][0] for sid in sampler})
    assert not any(torch.equal(epochs[0][i], epochs[1][i]) for i in range(len(ds)))
