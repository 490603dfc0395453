"""Dask adapter on a real two-process LocalCluster: outputs equal one in-process run, for any chunking."""

import numpy as np
import pytest

import sas_fast
from sas_fast import SASConfig
from tests.conftest import ellipse_masks, random_image

da = pytest.importorskip("dask.array", reason="Dask is not installed: pip install 'sas_fast[dask]'")
db = pytest.importorskip("dask.bag", reason="Dask is not installed: pip install 'sas_fast[dask]'")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed: pip install 'dask[distributed]'")

from sas_fast.distributed import augment_bag, augment_dask_array  # noqa: E402

SEED = 12
CONFIG = SASConfig(noise={"speckle": 1.0, "poisson": 1.0, "gaussian": 1.0}, sigma_range=(0.05, 0.2))


@pytest.fixture(scope="module")
def client():
    """Two worker processes (tasks and the SAS transform really cross a pickle boundary)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(99)
    return random_image(rng, (11, 24, 30, 3), np.uint16), ellipse_masks(rng, 11, 24, 30, label=2)


def _reference(images, masks, ids):
    params = CONFIG.sample(len(ids), seed=SEED, sample_ids=ids, masks=masks)
    return sas_fast.augment(images, masks, params, seed=SEED, backend="numpy")


@pytest.mark.parametrize("chunks", [11, 4, (2, 6, 3), 1])
def test_dask_array_equals_one_process_for_any_chunking(client, data, chunks):
    images, masks = data
    want_images, want_masks = _reference(images, masks, np.arange(11))
    # Image chunks also split H and W: the adapter merges them so each sample is augmented whole.
    lazy_images = da.from_array(images, chunks=(chunks, 12, 30, 3))
    out_images, out_masks = augment_dask_array(lazy_images, masks, CONFIG, seed=SEED, backend="numpy")
    assert out_images.chunks[0] == lazy_images.chunks[0]
    got_images, got_masks = client.compute([out_images, out_masks], sync=True)
    np.testing.assert_array_equal(got_images, want_images)
    np.testing.assert_array_equal(got_masks, want_masks)


def test_dask_array_shard_with_global_ids(client, data):
    images, masks = data
    grey = images[..., 0]
    ids = np.arange(1000, 1011)
    want_images, want_masks = _reference(grey, masks, ids)
    out = augment_dask_array(
        da.from_array(grey, chunks=(5, 24, 30)), da.from_array(masks, chunks=(3, 24, 30)), CONFIG, seed=SEED,
        sample_ids=da.arange(1000, 1011, chunks=4), backend="numpy",
    )
    got_images, got_masks = client.compute(list(out), sync=True)
    np.testing.assert_array_equal(got_images, want_images)
    np.testing.assert_array_equal(got_masks, want_masks)


def test_bag_of_records(client, data):
    images, masks = data
    want_images, want_masks = _reference(images, masks, np.arange(11))
    records = [{"image": images[i], "mask": masks[i], "sample_id": i, "name": f"s{i}"} for i in range(11)]
    got = augment_bag(db.from_sequence(records, npartitions=3), CONFIG, seed=SEED, backend="numpy")
    got = client.compute(got, sync=True)
    assert [r["name"] for r in got] == [f"s{i}" for i in range(11)]
    for i, record in enumerate(got):
        np.testing.assert_array_equal(record["image"], want_images[i])
        np.testing.assert_array_equal(record["mask"], want_masks[i])


def test_shape_errors(data):
    images, masks = data
    with pytest.raises(ValueError, match="must agree"):
        augment_dask_array(da.from_array(images), masks[:5], CONFIG)
    with pytest.raises(ValueError, match="sample_ids: expected 11 ids"):
        augment_dask_array(da.from_array(images), masks, CONFIG, sample_ids=np.arange(3))


def test_empty_batches_and_non_integer_ids_are_handled_cleanly():
    """Issue #13: an empty dask batch complained about float64; a bag id of 1.5 was truncated to 1."""
    da = pytest.importorskip("dask.array")
    db = pytest.importorskip("dask.bag")
    from sas_fast.distributed import augment_bag, augment_dask_array

    images, masks = augment_dask_array(da.zeros((0, 8, 8), dtype=np.uint8), da.zeros((0, 8, 8), dtype=np.uint8), seed=0)
    assert images.compute(scheduler="synchronous").shape == (0, 8, 8) and images.dtype == np.uint8
    assert masks.compute(scheduler="synchronous").dtype == np.uint8
    record = {"image": np.zeros((8, 8), np.uint8), "mask": np.ones((8, 8), np.uint8), "sample_id": 1.5}
    with pytest.raises(TypeError, match="sample_id: expected the sample's integer index"):
        augment_bag(db.from_sequence([record]), seed=0).compute(scheduler="synchronous")
