"""SAS parameter sampling (SPEC §5): ranges, probabilities, min_object_pixels, replay."""

import json

import numpy as np
import pytest
from scipy import stats

import sas_fast
from sas_fast import SASConfig, SASParams
from tests.conftest import ellipse_masks, random_image

N = 4000


def binomial_ok(successes, n, p):
    """Two-sided binomial test at 0.1 %: the observed count is plausible for probability p."""
    return stats.binomtest(int(successes), n, p).pvalue > 0.001


def test_paper_defaults():
    cfg = SASConfig()
    assert cfg.scale_range == (0.25, 1.0) and cfg.placement == "random"
    assert cfg.noise == {"speckle": 0.5, "poisson": 0.5} and cfg.source == "image"


def test_ranges_and_probabilities():
    cfg = SASConfig(p_scale=0.7, p_noise=0.6, noise={"speckle": 1, "gaussian": 3}, sigma_range=(0.05, 0.2),
                    peak_range=(16, 1024))
    p = cfg.sample(N, seed=1, shape=(64, 96))
    rescaled = p.scale != 1.0
    assert binomial_ok(rescaled.sum(), N, 0.7)
    assert ((p.scale[rescaled] >= 0.25) & (p.scale[rescaled] < 1.0)).all()
    assert stats.kstest((p.scale[rescaled] - 0.25) / 0.75, "uniform").pvalue > 0.001
    noisy = p.kind != "none"
    assert binomial_ok(noisy.sum(), N, 0.6)
    assert binomial_ok((p.kind[noisy] == "gaussian").sum(), int(noisy.sum()), 0.75)
    assert ((p.sigma >= 0.05) & (p.sigma <= 0.2)).all()
    assert stats.kstest(np.log(p.peak / 16) / np.log(64), "uniform").pvalue > 0.001  # log-uniform
    # random placement keeps the thumbnail inside the canvas, identity for unscaled samples
    h = np.floor(64 * p.scale + 0.5)
    w = np.floor(96 * p.scale + 0.5)
    assert ((p.offset[:, 0] >= 0) & (p.offset[:, 0] + h <= 64)).all()
    assert ((p.offset[:, 1] >= 0) & (p.offset[:, 1] + w <= 96)).all()
    assert (p.offset[~rescaled] == 0).all()
    # every possible offset is reachable: the top-left corner and the far edge both occur
    assert (p.offset[rescaled, 0] == 0).any() and (p.offset[rescaled, 0] + h[rescaled] == 64).any()


def test_center_placement():
    p = SASConfig(placement="center").sample(50, seed=0, shape=(100, 80))
    h = np.floor(100 * p.scale + 0.5).astype(int)
    assert (p.offset[:, 0] == (100 - h) // 2).all()


def test_sampling_is_per_sample_id():
    cfg = SASConfig()
    full = cfg.sample(10, seed=4, sample_ids=np.arange(100, 110), shape=(32, 32))
    one = cfg.sample(1, seed=4, sample_ids=[107], shape=(32, 32))
    assert one.to_dict()["scale"] == [full.scale[7]] and one.kind[0] == full.kind[7]
    assert cfg.sample(10, seed=5, shape=(32, 32)).scale.tolist() != cfg.sample(10, seed=4, shape=(32, 32)).scale.tolist()


def test_min_object_pixels_keeps_small_structures(rng):
    masks = np.zeros((20, 128, 128), np.uint8)
    for i in range(20):
        r = 3 + i % 5  # small discs, 28..150 pixels
        yy, xx = np.mgrid[0:128, 0:128]
        masks[i][(yy - 64) ** 2 + (xx - 64) ** 2 <= r * r] = 1
    images = random_image(rng, (20, 128, 128), np.uint8)
    cfg = SASConfig(scale_range=(0.05, 0.1), min_object_pixels=20, noise={"speckle": 1})
    params = cfg.sample(20, seed=8, masks=masks)
    _, out_masks = sas_fast.augment(images, masks, params, seed=8, backend="numpy")
    kept = out_masks.reshape(20, -1).sum(axis=1)
    assert (kept >= 20).all(), kept
    # without the floor, the same scales erase some of them
    free = SASConfig(scale_range=(0.05, 0.1), noise={"speckle": 1}).sample(20, seed=8, masks=masks)
    _, free_masks = sas_fast.augment(images, masks, free, seed=8, backend="numpy")
    assert (free_masks.reshape(20, -1).sum(axis=1) < 20).any()
    assert (params.scale < 1.0).all()  # raised just enough, not to the identity


def test_roi_source_shrinks_the_structure(rng):
    masks = ellipse_masks(rng, 6, 96, 96)
    p = SASConfig(source="roi", roi_margin=0.0).sample(6, seed=2, masks=masks)
    for i in range(6):
        ys, xs = np.nonzero(masks[i])
        assert p.crop[i].tolist() == [ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1]


@pytest.mark.parametrize("policy", [{}, {"source": "roi", "min_object_pixels": 30}], ids=["shape-only", "reads-labels"])
def test_masks_of_any_array_type_sample_alike(rng, policy):
    torch = pytest.importorskip("torch", reason="torch is not installed: tensor masks not checked")
    masks = ellipse_masks(rng, 4, 40, 52)
    config = SASConfig(**policy)
    want = config.sample(4, seed=9, masks=masks)
    for other in (torch.from_numpy(masks), masks.tolist(), masks[0]):
        n = 1 if np.ndim(other) == 2 else 4
        got = config.sample(n, seed=9, masks=other)
        assert got.to_dict() == want[:n].to_dict()


def test_json_round_trip_replays_exactly(rng):
    masks = ellipse_masks(rng, 5, 40, 40)
    images = random_image(rng, (5, 40, 40), np.uint16)
    p = SASConfig(sigma_range=(0.01, 0.3), peak_range=(10, 500)).sample(5, seed=6, masks=masks)
    text = json.dumps(p.to_dict())
    q = SASParams.from_json(text)
    for name in ("sample_ids", "scale", "crop", "offset", "sigma", "peak"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    a = sas_fast.augment(images, masks, p, seed=1, backend="numpy")
    b = sas_fast.augment(images, masks, q, seed=1, backend="numpy")
    np.testing.assert_array_equal(a[0], b[0])
    cfg = SASConfig(p_noise=0.3, labels=(1, 2))
    assert SASConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_params_subset_and_concatenate():
    p = SASConfig().sample(6, seed=0, shape=(20, 20))
    q = SASParams.concatenate([p[0:2], p[2], p[3:]])
    assert q.to_dict() == p.to_dict()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"p_scale": 1.5}, "p_scale"),
        ({"scale_range": (0.0, 1.0)}, "scale_range"),
        ({"scale_range": (0.9, 0.5)}, "scale_range"),
        ({"placement": "left"}, "placement"),
        ({"noise": {"pepper": 1.0}}, "noise"),
        ({"noise": {"speckle": 0.0}}, "noise"),
        ({"sigma_range": (-0.1, 0.1)}, "sigma_range"),
        ({"peak_range": (0, 10)}, "peak_range"),
        ({"source": "organ"}, "source"),
        ({"min_object_pixels": 0}, "min_object_pixels"),
    ],
)
def test_bad_config_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SASConfig(**kwargs)


def test_unknown_config_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown key"):
        SASConfig.from_dict({"scale_range": [0.3, 0.9], "__import__": "os"})


def test_sample_needs_a_canvas_and_roi_needs_masks():
    with pytest.raises(ValueError, match="shape"):
        SASConfig().sample(3, seed=0)
    with pytest.raises(ValueError, match="masks"):
        SASConfig(source="roi").sample(3, seed=0, shape=(10, 10))


def test_degenerate_ranges_give_their_value_exactly():
    p = SASConfig(sigma_range=(0.1, 0.1), peak_range=(256, 256), scale_range=(0.5, 0.5)).sample(20, seed=0, shape=(8, 8))
    assert set(p.peak.tolist()) == {256.0} and set(p.sigma.tolist()) == {0.1}
    assert set(p.scale[p.scale != 1.0].tolist()) == {0.5}
