"""sas_fast.SAS: the per-sample transform equals config.sample + augment for its sample id, pickles,
and gives every dataset index the same output whatever the worker split or order."""

import pickle

import numpy as np
import pytest

import sas_fast
from sas_fast import SAS, SASConfig

from tests.conftest import ellipse_masks, random_image

ROI = SASConfig(source="roi", min_object_pixels=30, noise={"gaussian": 1.0, "poisson": 1.0}, sigma_range=(0.05, 0.2))


@pytest.mark.parametrize("config", [None, ROI], ids=["paper-defaults", "roi-min-pixels"])
@pytest.mark.parametrize(
    "dtype, shape, value_range",
    [(np.uint8, (40, 48), None), (np.uint16, (40, 48, 3), None), (np.float32, (40, 48), (0.0, 4.0))],
)
def test_call_equals_augment_of_sampled_params(rng, config, dtype, shape, value_range):
    image = random_image(rng, shape, dtype)
    if dtype == np.float32:
        image *= np.float32(4.0)
    mask = ellipse_masks(rng, 1, 40, 48, label=3)[0]
    t = SAS(config, seed=77, backend="numpy", value_range=value_range)
    for sid in (0, 5, 123456):
        got = t(image=image, mask=mask, sample_id=sid, return_params=True)
        params = (config or SASConfig()).sample(1, seed=77, sample_ids=[sid], masks=mask[None])
        want_image, want_mask = sas_fast.augment(
            image[None], mask[None], params, seed=77, value_range=value_range, backend="numpy"
        )
        assert got["params"].to_dict() == params.to_dict()
        assert got["image"].shape == shape and got["image"].dtype == dtype
        np.testing.assert_array_equal(got["image"], want_image[0])
        np.testing.assert_array_equal(got["mask"], want_mask[0])
    assert set(t(image=image, mask=mask, sample_id=1)) == {"image", "mask"}


def test_batch_equals_per_sample_calls(rng):
    images = random_image(rng, (4, 32, 36, 3), np.uint8)
    masks = ellipse_masks(rng, 4, 32, 36)
    ids = [17, 3, 3, 90]
    t = SAS(seed=5, backend="numpy")
    batch = t.batch(images, masks, sample_ids=ids, return_params=True)
    assert batch["params"].sample_ids.tolist() == ids
    for i, sid in enumerate(ids):
        one = t(image=images[i], mask=masks[i], sample_id=sid)
        np.testing.assert_array_equal(batch["image"][i], one["image"])
        np.testing.assert_array_equal(batch["mask"][i], one["mask"])
    default = t.batch(images, masks, sample_ids="range")  # ids 0..N-1, asked for explicitly
    np.testing.assert_array_equal(default["image"][2], t(image=images[2], mask=masks[2], sample_id=2)["image"])


def test_batch_needs_sample_ids(rng):
    """Without ids every batch got the same draws (ids 0..N-1), silently: now it is an error."""
    images = random_image(rng, (2, 16, 16), np.uint8)
    masks = ellipse_masks(rng, 2, 16, 16)
    t = SAS(seed=5, backend="numpy")
    with pytest.raises(TypeError, match=r"sample_ids: SAS.batch needs the global sample id of each of the 2 samples"):
        t.batch(images, masks)
    with pytest.raises(TypeError, match=r"sample_ids='range' to use 0..N-1 on purpose"):
        t.batch(images, masks, sample_ids=None)
    with pytest.raises(ValueError, match=r"sample_ids: expected integer ids \(one per sample\) or 'range', got 'ar"):
        t.batch(images, masks, sample_ids="arange")


def test_seed_and_sample_id_change_the_output(rng):
    image = random_image(rng, (32, 32), np.uint8)
    mask = ellipse_masks(rng, 1, 32, 32)[0]
    base = SAS(seed=1, backend="numpy")(image=image, mask=mask, sample_id=0)["image"]
    assert not np.array_equal(base, SAS(seed=1, backend="numpy")(image=image, mask=mask, sample_id=1)["image"])
    assert not np.array_equal(base, SAS(seed=2, backend="numpy")(image=image, mask=mask, sample_id=0)["image"])


def test_pickle_round_trip_gives_identical_outputs(rng):
    image = random_image(rng, (30, 40), np.uint16)
    mask = ellipse_masks(rng, 1, 30, 40)[0]
    t = SAS(ROI, seed=2**63 + 5, backend="numpy")
    clone = pickle.loads(pickle.dumps(t))
    assert clone.config == t.config and clone.seed == t.seed
    for sid in (0, 9):
        a, b = t(image=image, mask=mask, sample_id=sid), clone(image=image, mask=mask, sample_id=sid)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])


class _Dataset:
    """A Dataset as a user writes it: the transform gets the index as the sample id."""

    def __init__(self, images, masks, transform):
        self.images, self.masks, self.transform = images, masks, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        out = self.transform(image=self.images[index], mask=self.masks[index], sample_id=index)
        return out["image"], out["mask"]


def test_worker_split_and_order_do_not_matter(rng):
    images = random_image(rng, (12, 24, 28), np.uint8)
    masks = ellipse_masks(rng, 12, 24, 28)
    t = SAS(seed=31, backend="numpy")
    reference = {i: _Dataset(images, masks, t)[i] for i in range(12)}
    # Three "workers", each with its own unpickled copy (as DataLoader workers get), strided and reversed.
    for workers in (2, 3, 5):
        for w in range(workers):
            dataset = pickle.loads(pickle.dumps(_Dataset(images, masks, t)))
            for i in reversed(range(w, 12, workers)):
                image, mask = dataset[i]
                np.testing.assert_array_equal(image, reference[i][0])
                np.testing.assert_array_equal(mask, reference[i][1])


def test_torch_dataloader_worker_count_invariance(rng):
    torch = pytest.importorskip("torch", reason="torch is not installed: the real DataLoader test needs it")
    from torch.utils.data import DataLoader

    images = random_image(rng, (10, 24, 28), np.uint8)
    masks = ellipse_masks(rng, 10, 24, 28)
    dataset = _Dataset(images, masks, SAS(seed=8, backend="numpy"))

    def run(num_workers, batch_size):
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
        return [torch.cat(parts).numpy() for parts in zip(*loader)]

    one = run(0, 4)
    two = run(2, 3)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one[0][7], dataset[7][0])


def test_torch_batch_comes_back_as_torch(rng):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    images = random_image(rng, (3, 20, 20), np.uint8)
    masks = ellipse_masks(rng, 3, 20, 20)
    t = SAS(seed=4, backend="numpy")
    out = t.batch(torch.from_numpy(images), torch.from_numpy(masks), sample_ids=torch.tensor([4, 5, 6]))
    assert isinstance(out["image"], torch.Tensor)
    np.testing.assert_array_equal(out["image"].numpy()[1], t(image=images[1], mask=masks[1], sample_id=5)["image"])


def test_errors(rng):
    image = random_image(rng, (16, 16), np.uint8)
    mask = ellipse_masks(rng, 1, 16, 16)[0]
    t = SAS(backend="numpy")
    with pytest.raises(TypeError, match="sample_id"):
        t(image=image, mask=mask)
    with pytest.raises(TypeError, match="sample_id: expected the sample's integer index"):
        t(image=image, mask=mask, sample_id=1.5)
    with pytest.raises(ValueError, match=r"mask: expected one \(H, W\) or \(1, H, W\) label mask"):
        t(image=image, mask=np.stack([mask, mask]), sample_id=0)
    with pytest.raises(ValueError, match="mask: shape"):
        t(image=image, mask=mask[:8], sample_id=0)
    with pytest.raises(ValueError, match="sample_ids: expected integers in"):
        t(image=image, mask=mask, sample_id=2**32)
    with pytest.raises(TypeError, match="config: expected a SASConfig"):
        SAS({"p_scale": 1.0})
    with pytest.raises(ValueError, match="seed"):
        SAS(seed=-1)
    with pytest.raises(ValueError, match="sample_ids: expected 2 ids"):
        t.batch(np.stack([image, image]), np.stack([mask, mask]), sample_ids=[1, 2, 3])
