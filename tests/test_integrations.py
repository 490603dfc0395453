"""The framework adapters (sas_fast.integrations, issue #11), each inside its framework's own Compose.

Every check compares real outputs with ``sas_fast.augment`` for the same parameters and sample id
(after the framework's other transforms, applied to the reference the same way), and checks what
the framework needs kept: tv_tensors types, ``MetaTensor`` meta and affine, dtypes.  Each
framework's tests skip, saying why, where it does not import.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import sas_fast
from sas_fast import SASConfig, SASParams


def _framework(name: str):
    """Import ``name`` or skip with the reason (torchvision beside a mismatched torch raises a
    RuntimeError, not an ImportError, so ``pytest.importorskip`` would not catch it)."""
    try:
        return __import__(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means: not usable here
        pytest.skip(f"{name} is not importable here ({type(exc).__name__}: {exc})")


def _sample(h: int = 40, w: int = 56, channels: int | None = None, seed: int = 0, label: int = 1):
    """A uint8 image ((H, W) or (H, W, C)) and an int64 label mask holding an off-centre blob."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    image = rng.integers(20, 236, shape, dtype=np.uint8)
    mask = np.zeros((h, w), np.int64)
    mask[h // 4 : h // 4 + h // 3, w // 3 : w // 3 + w // 3] = label
    return image, mask


def _reference(image, mask, sample_id: int, sas_seed: int, config: SASConfig | None = None):
    """``sas_fast.augment`` of one channel-last sample with ``SASConfig.sample``'s parameters for the id."""
    params = (config or SASConfig()).sample(1, seed=sas_seed, sample_ids=[sample_id], masks=mask.astype(np.int32)[None])
    image_out, mask_out = sas_fast.augment(image, mask.astype(np.int32), params, seed=sas_seed)
    return image_out, mask_out, params


def _geometry(mask, params: SASParams):
    """The mask geometry of ``params`` alone (any label mask, e.g. an extra target)."""
    _, out = sas_fast.augment(np.zeros(mask.shape, np.uint8), mask.astype(np.int32), params, seed=0)
    return out


CONFIG = SASConfig(scale_range=(0.4, 0.8), noise={"speckle": 1.0}, sigma_range=(0.2, 0.2))


# -- package boundaries ------------------------------------------------------------------------


def test_importing_sas_fast_imports_no_framework():
    code = (
        "import sys, sas_fast, sas_fast.integrations\n"
        "loaded = [m for m in ('albumentations', 'torchvision', 'monai') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module, extra", [("albumentations", "albumentations"), ("torchvision", "torchvision"), ("monai", "monai")])
def test_missing_framework_names_the_extra(module, extra):
    # a fresh interpreter where the framework cannot be imported (None in sys.modules blocks it)
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "try:\n"
        f"    import sas_fast.integrations.{module}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported without the framework')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'pip install "sas_fast[{extra}]"' in result.stdout, result.stdout


def test_label_casts_and_errors():
    from sas_fast.integrations._common import labels_back, labels_for_core, sample_ids

    big = np.array([[0, 2**31]], np.int64)
    with pytest.raises(ValueError, match=r"mask: labels of dtype int64 .*\[-2147483648, 2147483647\].*\[0, 2147483648\]"):
        labels_for_core(big, "mask")
    with pytest.raises(ValueError, match="whole numbers"):
        labels_for_core(np.array([[0.0, 0.5]], np.float32), "label")
    cast = labels_for_core(np.array([[0, 7]], np.int64), "mask")
    assert cast.dtype == np.int32 and labels_back(cast, np.zeros(1, np.int64)).dtype == np.int64
    same = np.zeros((2, 2), np.uint8)
    assert labels_for_core(same, "mask") is same  # kernel dtypes are not copied
    with pytest.raises(ValueError, match=r"sample ids must lie in \[0, 2\*\*32\)"):
        sample_ids(2**32, 1, "data['sample_id']")
    with pytest.raises(TypeError, match="data\\['sample_id'\\]: expected an integer sample id"):
        sample_ids(1.5, 1, "data['sample_id']")
    with pytest.raises(ValueError, match="expected 2 sample id"):
        sample_ids([1, 2, 3], 2, "sample_id")


# -- albumentations ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def A():
    return _framework("albumentations")


@pytest.fixture(scope="module")
def AlbSAS(A):
    from sas_fast.integrations.albumentations import SAS

    return SAS


def _sas_record(out) -> dict:
    return dict(out["applied_transforms"])["SAS"]


def test_albumentations_compose_equals_augment(A, AlbSAS):
    image, mask = _sample(channels=3)
    pipeline = A.Compose(
        [A.HorizontalFlip(p=1.0), AlbSAS(CONFIG, sas_seed=5), A.Normalize(mean=0.5, std=0.25)], save_applied_params=True
    )
    out = pipeline(image=image, mask=mask, sample_id=11)
    ref_image, ref_mask, params = _reference(image[:, ::-1].copy(), mask[:, ::-1].copy(), 11, 5, CONFIG)
    expected = A.Normalize(mean=0.5, std=0.25)(image=ref_image)["image"]
    np.testing.assert_array_equal(out["image"], expected)
    np.testing.assert_array_equal(out["mask"], ref_mask)
    # SAS keeps the dtype it is given (albumentations' HorizontalFlip itself turns int64 masks into int32)
    assert out["mask"].dtype == A.HorizontalFlip(p=1.0)(image=image, mask=mask)["mask"].dtype
    assert out["sample_id"] == 11
    record = _sas_record(out)
    assert record["sample_id"] == 11 and record["sample_id_drawn"] is False
    assert record["sas_params"] == params.to_dict()
    json.dumps(record["sas_params"])  # JSON-ready
    # the record replays with the core API alone
    replayed, _ = sas_fast.augment(image[:, ::-1].copy(), mask[:, ::-1].astype(np.int32), SASParams.from_dict(record["sas_params"]), seed=5)
    np.testing.assert_array_equal(replayed, ref_image)
    assert not np.array_equal(ref_image, image[:, ::-1])  # SAS did change the image


@pytest.fixture
def served(monkeypatch):
    """Whether each adapter call of ``Core.sampled`` was served by SAS's one-sample path."""
    from sas_fast.integrations import _common

    calls = []
    real = _common.Core.sampled

    def counting(self, *args):
        result = real(self, *args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(_common.Core, "sampled", counting)
    return calls


@pytest.mark.parametrize("mask_first", [False, True])
@pytest.mark.parametrize("mask_dtype", [np.uint8, np.int64])
def test_albumentations_one_sample_path_matches_augment(A, AlbSAS, served, mask_first, mask_dtype):
    """The adapter's image goes through SAS's one-sample path and, when the image comes first, the
    label mask takes the geometry computed with it: the same arrays as sas_fast.augment either way."""
    pipeline = A.Compose([AlbSAS(CONFIG, sas_seed=6)])
    for sid in range(12):
        image, mask = _sample(channels=3 if sid % 2 else None, seed=sid)
        mask = mask.astype(mask_dtype)
        data = {"mask": mask, "image": image} if mask_first else {"image": image, "mask": mask}
        out = pipeline(**data, sample_id=sid)
        ref_image, ref_mask, _ = _reference(image, mask, sid, 6, CONFIG)
        np.testing.assert_array_equal(out["image"], ref_image)
        np.testing.assert_array_equal(out["mask"], ref_mask)
        assert out["mask"].dtype == mask_dtype
    assert served and all(served)


def test_albumentations_additional_targets(A, AlbSAS):
    image, mask = _sample(channels=3, seed=1)
    image2 = (255 - image).astype(np.uint8)
    mask2 = np.zeros(mask.shape, np.uint8)
    mask2[5:30, 4:20] = 3
    masks3 = np.stack([mask, mask2.astype(np.int64)], axis=-1)  # a multi-channel (H, W, K) mask
    pipeline = A.Compose(
        [AlbSAS(CONFIG, sas_seed=2)], additional_targets={"image2": "image", "mask2": "mask", "mask3": "mask"}
    )
    out = pipeline(image=image, mask=mask, image2=image2, mask2=mask2, mask3=masks3, sample_id=4)
    ref_image, ref_mask, params = _reference(image, mask, 4, 2, CONFIG)
    np.testing.assert_array_equal(out["image"], ref_image)
    np.testing.assert_array_equal(out["mask"], ref_mask)
    # extra image: same geometry, same noise draws inside data["mask"]'s structure
    ref_image2, _ = sas_fast.augment(image2, mask.astype(np.int32), params, seed=2)
    np.testing.assert_array_equal(out["image2"], ref_image2)
    np.testing.assert_array_equal(out["mask2"], _geometry(mask2, params))
    assert out["mask2"].dtype == np.uint8
    np.testing.assert_array_equal(out["mask3"][..., 0], ref_mask)
    np.testing.assert_array_equal(out["mask3"][..., 1], _geometry(mask2, params))
    assert out["mask3"].dtype == np.int64 and out["mask3"].shape == masks3.shape


def test_albumentations_ids_reproducible_and_distinct(A, AlbSAS):
    image, mask = _sample(seed=2)
    first = A.Compose([AlbSAS(sas_seed=9)], seed=1)(image=image, mask=mask, sample_id=21)
    second = A.Compose([AlbSAS(sas_seed=9)], seed=777)(image=image, mask=mask, sample_id=21)  # other pipeline RNG
    other = A.Compose([AlbSAS(sas_seed=9)], seed=1)(image=image, mask=mask, sample_id=22)
    np.testing.assert_array_equal(first["image"], second["image"])
    np.testing.assert_array_equal(first["mask"], second["mask"])
    assert not np.array_equal(first["image"], other["image"])
    np.testing.assert_array_equal(first["image"], _reference(image, mask, 21, 9)[0])
    clone = pickle.loads(pickle.dumps(AlbSAS(sas_seed=9)))  # what DataLoader workers get
    np.testing.assert_array_equal(A.Compose([clone])(image=image, mask=mask, sample_id=21)["image"], first["image"])


def test_albumentations_fallback_draws_from_its_generator(A, AlbSAS):
    image, mask = _sample(seed=3)
    pipeline = A.Compose([AlbSAS(CONFIG, sas_seed=1)], seed=123, save_applied_params=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = pipeline(image=image, mask=mask)
        b = pipeline(image=image, mask=mask)
    assert [str(w.message) for w in caught if "sample id is drawn" in str(w.message)], "no warning about the missing id"
    assert sum("sample id is drawn" in str(w.message) for w in caught) == 1, "warns once per transform"
    ra, rb = _sas_record(a), _sas_record(b)
    assert ra["sample_id_drawn"] and rb["sample_id_drawn"] and ra["sample_id"] != rb["sample_id"]
    assert not np.array_equal(a["image"], b["image"])
    # the documented fallback: ids from the transform's albumentations generator, Compose(seed=123)
    expected = np.random.default_rng(123).integers(0, 2**32, size=2, dtype=np.int64)
    assert [ra["sample_id"], rb["sample_id"]] == expected.tolist()
    np.testing.assert_array_equal(a["image"], _reference(image, mask, int(expected[0]), 1, CONFIG)[0])
    # on purpose (sample_id_key=None): the same draws, without the warning
    quiet = A.Compose([AlbSAS(CONFIG, sas_seed=1, sample_id_key=None)], seed=123)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(quiet(image=image, mask=mask, sample_id=5)["image"], a["image"])


def test_albumentations_p0_leaves_data_unchanged(A, AlbSAS):
    image, mask = _sample(channels=3, seed=4)
    out = A.Compose([AlbSAS(sas_seed=0, p=0.0)], save_applied_params=True)(image=image, mask=mask, sample_id=1)
    np.testing.assert_array_equal(out["image"], image)
    np.testing.assert_array_equal(out["mask"], mask)
    assert out["mask"].dtype == np.int64 and out["applied_transforms"] == []
    with pytest.raises(ValueError, match=r"p: expected a probability in \[0, 1\], got 1.5"):
        AlbSAS(p=1.5)


def test_albumentations_int64_labels_round_trip(A, AlbSAS):
    image, mask = _sample(seed=5, label=70000)  # > uint16: only int32 holds it
    out = A.Compose([AlbSAS(sas_seed=3)])(image=image, mask=mask, sample_id=2)
    ref_image, ref_mask, _ = _reference(image, mask, 2, 3)
    assert out["mask"].dtype == np.int64 and set(np.unique(out["mask"])) <= {0, 70000}
    np.testing.assert_array_equal(out["mask"], ref_mask)
    np.testing.assert_array_equal(out["image"], ref_image)
    mask[0, 0] = 2**40
    with pytest.raises(ValueError, match=r"int32 .* got labels in \[0, 1099511627776\]"):
        A.Compose([AlbSAS()])(image=image, mask=mask, sample_id=2)


def test_albumentations_replay_serialise_and_strict(A, AlbSAS):
    image, mask = _sample(seed=6)
    replay = A.ReplayCompose([A.HorizontalFlip(p=0.5), AlbSAS(CONFIG, sas_seed=4)])
    first = replay(image=image, mask=mask, sample_id=8)
    again = A.ReplayCompose.replay(first["replay"], image=image, mask=mask)
    np.testing.assert_array_equal(again["image"], first["image"])
    np.testing.assert_array_equal(again["mask"], first["mask"])
    # JSON serialisation rebuilds the same transform
    pipeline = A.Compose([AlbSAS(CONFIG, sas_seed=4, value_range=(0, 2))])
    rebuilt = A.from_dict(json.loads(json.dumps(A.to_dict(pipeline))))
    bright = image.astype(np.float32) / 128  # float32 in [0, 2)
    rebuilt_out = rebuilt(image=bright, mask=mask, sample_id=8)["image"]
    np.testing.assert_array_equal(rebuilt_out, pipeline(image=bright, mask=mask, sample_id=8)["image"])
    assert rebuilt_out.max() > 1  # value_range=(0, 2) survived the round trip (the default clips at 1)
    # strict mode knows the id key
    strict = A.Compose([AlbSAS(sas_seed=4)], strict=True)
    np.testing.assert_array_equal(strict(image=image, mask=mask, sample_id=8)["image"], _reference(image, mask, 8, 4)[0])
    with pytest.raises(ValueError, match=r"mask: SAS needs data\['mask'\]"):
        A.Compose([AlbSAS()])(image=image, sample_id=1)


# -- torchvision v2 ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tv():
    _framework("torchvision")
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from sas_fast.integrations.torchvision import SAS

    return SimpleNamespace(torch=torch, tv_tensors=tv_tensors, v2=v2, SAS=SAS)


def _tv_sample(tv, channels: int = 3, seed: int = 0, label: int = 1):
    image, mask = _sample(channels=channels, seed=seed, label=label)
    t = tv.torch
    return (
        tv.tv_tensors.Image(t.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))),
        tv.tv_tensors.Mask(t.from_numpy(mask)[None]),
        image,
        mask,
    )


def test_torchvision_compose_equals_augment(tv):
    img, msk, image, mask = _tv_sample(tv)
    v2 = tv.v2
    pipeline = v2.Compose(
        [v2.RandomHorizontalFlip(p=1.0), tv.SAS(CONFIG, sas_seed=5, params_key="sas"), v2.ToDtype(tv.torch.float32, scale=True)]
    )
    out = pipeline({"image": img, "mask": msk, "sample_id": 11, "label": 3})
    ref_image, ref_mask, params = _reference(image[:, ::-1].copy(), mask[:, ::-1].copy(), 11, 5, CONFIG)
    expected = v2.ToDtype(tv.torch.float32, scale=True)(tv.tv_tensors.Image(tv.torch.from_numpy(ref_image).permute(2, 0, 1)))
    assert type(out["image"]) is tv.tv_tensors.Image and type(out["mask"]) is tv.tv_tensors.Mask
    assert tv.torch.equal(out["image"], expected)
    assert out["mask"].dtype == tv.torch.int64 and out["mask"].shape == (1, *mask.shape)
    np.testing.assert_array_equal(out["mask"][0].numpy(), ref_mask)
    assert out["sample_id"] == 11 and out["label"] == 3 and out["sas"] == params.to_dict()


def test_torchvision_cpu_images_take_the_one_sample_path(tv, served):
    for sid in range(6):
        img, msk, image, mask = _tv_sample(tv, channels=1 + 2 * (sid % 2), seed=sid)  # grey and RGB
        out = tv.SAS(CONFIG, sas_seed=4)({"image": img, "mask": msk, "sample_id": sid})
        ref_image, ref_mask, _ = _reference(image, mask, sid, 4, CONFIG)
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), ref_image)
        np.testing.assert_array_equal(out["mask"][0].numpy(), ref_mask)
    assert served and all(served)


def test_torchvision_batch_equals_samples(tv):
    torch, tvt = tv.torch, tv.tv_tensors
    parts = [_tv_sample(tv, seed=s) for s in range(3)]
    images = tvt.Image(torch.stack([p[0] for p in parts]))
    masks4 = tvt.Mask(torch.stack([p[1] for p in parts]))  # (N, 1, H, W)
    ids = torch.tensor([40, 41, 42])
    t = tv.SAS(CONFIG, sas_seed=3)
    out = tv.v2.Compose([t])({"image": images, "mask": masks4, "sample_id": ids})
    out3 = t({"image": images, "mask": tvt.Mask(masks4[:, 0]), "sample_id": ids.tolist()})  # (N, H, W) masks
    assert type(out["image"]) is tvt.Image and out["image"].shape == images.shape and out["mask"].shape == masks4.shape
    assert torch.equal(out3["image"], out["image"]) and torch.equal(out3["mask"], out["mask"][:, 0])
    for i, (_, _, image, mask) in enumerate(parts):
        ref_image, ref_mask, _ = _reference(image, mask, 40 + i, 3, CONFIG)
        np.testing.assert_array_equal(out["image"][i].permute(1, 2, 0).numpy(), ref_image)
        np.testing.assert_array_equal(out["mask"][i, 0].numpy(), ref_mask)


def test_torchvision_plain_tensor_and_direct_call(tv):
    img, msk, image, mask = _tv_sample(tv, channels=1, seed=7)
    t = tv.SAS(sas_seed=2)
    plain = img.as_subclass(tv.torch.Tensor)
    image_out, mask_out = t(plain, msk, sample_id=6)  # a tuple sample, the id as an argument
    assert type(image_out) is tv.torch.Tensor and type(mask_out) is tv.tv_tensors.Mask
    ref_image, ref_mask, _ = _reference(image, mask, 6, 2)
    np.testing.assert_array_equal(image_out[0].numpy(), ref_image[..., 0])
    np.testing.assert_array_equal(mask_out[0].numpy(), ref_mask)


def test_torchvision_ids_and_fallback(tv):
    torch = tv.torch
    img, msk, image, mask = _tv_sample(tv, seed=8)
    t = tv.SAS(CONFIG, sas_seed=1, params_key="sas")
    a = t({"image": img, "mask": msk, "sample_id": 3})
    b = tv.SAS(CONFIG, sas_seed=1)({"image": img, "mask": msk, "sample_id": 3})
    c = t({"image": img, "mask": msk, "sample_id": 4})
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], c["image"])
    clone = pickle.loads(pickle.dumps(t))  # what DataLoader workers get
    assert torch.equal(clone({"image": img, "mask": msk, "sample_id": 3})["image"], a["image"])
    # no id: fresh ids from torch's generator (here an explicit one)
    fallback = tv.SAS(CONFIG, sas_seed=1, params_key="sas", generator=torch.Generator().manual_seed(17))
    x = fallback({"image": img, "mask": msk})
    y = fallback({"image": img, "mask": msk})
    assert not torch.equal(x["image"], y["image"])
    expected = torch.randint(0, 2**32, (2,), generator=torch.Generator().manual_seed(17)).tolist()
    assert [x["sas"]["sample_ids"][0], y["sas"]["sample_ids"][0]] == expected
    np.testing.assert_array_equal(x["image"].permute(1, 2, 0).numpy(), _reference(image, mask, expected[0], 1, CONFIG)[0])


def test_torchvision_p0_and_int64_round_trip(tv):
    torch = tv.torch
    img, msk, image, mask = _tv_sample(tv, seed=9, label=70000)
    sample = {"image": img, "mask": msk, "sample_id": 1}
    assert tv.SAS(p=0.0)(sample) is sample and torch.equal(sample["image"], img)
    out = tv.SAS(sas_seed=4)(sample)
    assert out["mask"].dtype == torch.int64 and set(out["mask"].unique().tolist()) <= {0, 70000}
    np.testing.assert_array_equal(out["mask"][0].numpy(), _reference(image, mask, 1, 4)[1])
    too_big = tv.tv_tensors.Mask(msk.clone())
    too_big[0, 0, 0] = 2**40
    with pytest.raises(ValueError, match=r"int32 .* got labels in \[0, 1099511627776\]"):
        tv.SAS()({"image": img, "mask": too_big, "sample_id": 1})
    with pytest.raises(TypeError, match="BoundingBoxes inputs are not supported"):
        boxes = tv.tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=mask.shape)
        tv.SAS()({"image": img, "mask": msk, "boxes": boxes, "sample_id": 1})


def test_torchvision_cuda(tv):
    torch = tv.torch
    if not torch.cuda.is_available() or "cupy" not in sas_fast.available_backends():
        pytest.skip("needs a CUDA GPU with CuPy (the cupy backend)")
    img, msk, image, mask = _tv_sample(tv, seed=10)
    out = tv.SAS(CONFIG, sas_seed=6)({"image": img.cuda(), "mask": msk.cuda(), "sample_id": 5})
    assert out["image"].is_cuda and out["mask"].is_cuda and type(out["image"]) is tv.tv_tensors.Image
    ref_image, ref_mask, _ = _reference(image, mask, 5, 6, CONFIG)
    np.testing.assert_array_equal(out["image"].cpu().permute(1, 2, 0).numpy(), ref_image)
    np.testing.assert_array_equal(out["mask"][0].cpu().numpy(), ref_mask)


# -- MONAI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mn():
    _framework("monai")
    import torch
    from monai import transforms as mt
    from monai.data import CacheDataset, Dataset, MetaTensor

    from sas_fast.integrations.monai import RandSASd

    return SimpleNamespace(torch=torch, mt=mt, CacheDataset=CacheDataset, Dataset=Dataset, MetaTensor=MetaTensor,
                           RandSASd=RandSASd)  # fmt: skip


def _monai_record(mn, seed: int = 0, sample_id: int | None = 7):
    image, mask = _sample(seed=seed)
    affine = mn.torch.diag(mn.torch.tensor([0.3, 0.3, 1.0, 1.0], dtype=mn.torch.float64))
    record = {
        "image": mn.MetaTensor(image.astype(np.float32), affine=affine, meta={"filename_or_obj": f"case{seed}.png"}),
        "label": mn.MetaTensor(mask.astype(np.float32), affine=affine),  # MONAI loads labels as float32
    }
    if sample_id is not None:
        record["sample_id"] = sample_id
    return record, image, mask, affine


def _monai_pre(mn):
    return [mn.mt.EnsureChannelFirstd(["image", "label"], channel_dim="no_channel"), mn.mt.ScaleIntensityd("image")]


def test_monai_compose_equals_augment(mn):
    record, image, mask, affine = _monai_record(mn)
    sas = mn.RandSASd(["image", "label"], label_key="label", config=CONFIG, sas_seed=5, params_key="sas")
    pipeline = mn.mt.Compose([*_monai_pre(mn), sas, mn.mt.RandFlipd(["image", "label"], prob=1.0, spatial_axis=1)])
    out = pipeline(record)
    pre = mn.mt.Compose(_monai_pre(mn))(record)
    ref_image, ref_mask, params = _reference(pre["image"][0].numpy(), mask, 7, 5, CONFIG)
    assert isinstance(out["image"], mn.MetaTensor) and isinstance(out["label"], mn.MetaTensor)
    np.testing.assert_array_equal(out["image"][0].numpy(), ref_image[:, ::-1])
    np.testing.assert_array_equal(out["label"][0].numpy(), ref_mask[:, ::-1])
    assert out["image"].dtype == mn.torch.float32 and out["label"].dtype == mn.torch.float32
    assert out["image"].meta["filename_or_obj"] == "case0.png"
    assert out["sas"] == params.to_dict() and out["sample_id"] == 7
    # SAS leaves the affine as it was (only RandFlipd's flip is in it) and keeps the trace of earlier transforms
    flipped_only = mn.mt.Compose([*_monai_pre(mn), mn.mt.RandFlipd(["image", "label"], prob=1.0, spatial_axis=1)])(record)
    assert mn.torch.equal(out["image"].affine, flipped_only["image"].affine)
    after_sas = mn.mt.Compose([*_monai_pre(mn), sas])(record)
    assert mn.torch.equal(after_sas["image"].affine, affine)
    assert [op["class"] for op in out["image"].applied_operations] == [
        op["class"] for op in flipped_only["image"].applied_operations
    ]


def test_monai_grey_images_take_the_one_sample_path(mn, served):
    sas = mn.RandSASd(["image", "label"], label_key="label", config=CONFIG, sas_seed=5)
    pipeline = mn.mt.Compose([*_monai_pre(mn), sas])
    for seed in range(4):
        record, image, mask, _ = _monai_record(mn, seed=seed, sample_id=seed)
        out = pipeline(record)
        pre = mn.mt.Compose(_monai_pre(mn))(record)
        ref_image, ref_mask, _ = _reference(pre["image"][0].numpy(), mask, seed, 5, CONFIG)
        np.testing.assert_array_equal(out["image"][0].numpy(), ref_image)
        np.testing.assert_array_equal(out["label"][0].numpy(), ref_mask)
    assert served and all(served)


def test_monai_datasets(mn):
    records, refs = [], []
    for i in range(3):
        record, image, mask, _ = _monai_record(mn, seed=i, sample_id=100 + i)
        records.append(record)
        pre = mn.mt.Compose(_monai_pre(mn))(record)
        refs.append(_reference(pre["image"][0].numpy(), mask, 100 + i, 2, CONFIG)[:2])
    pipeline = mn.mt.Compose([*_monai_pre(mn), mn.RandSASd(["image", "label"], config=CONFIG, sas_seed=2)])
    clone = pickle.loads(pickle.dumps(pipeline))  # what DataLoader workers get
    for dataset in (
        mn.Dataset(records, transform=pipeline),
        mn.CacheDataset(records, transform=pipeline, progress=False),
        mn.CacheDataset(records, transform=clone, progress=False),
    ):
        for i, (ref_image, ref_mask) in enumerate(refs):
            item = dataset[i]
            assert isinstance(item["image"], mn.MetaTensor) and item["image"].meta["filename_or_obj"] == f"case{i}.png"
            np.testing.assert_array_equal(item["image"][0].numpy(), ref_image)
            np.testing.assert_array_equal(item["label"][0].numpy(), ref_mask)
            assert mn.torch.equal(dataset[i]["image"], item["image"])  # same id, same output on every access


def test_monai_ids_fallback_and_prob0(mn):
    record, image, mask, _ = _monai_record(mn, seed=3, sample_id=None)
    pre = mn.mt.Compose(_monai_pre(mn))(record)
    t = mn.RandSASd(["image", "label"], config=CONFIG, sas_seed=1, params_key="sas").set_random_state(seed=4)
    a, b = t(pre), t(pre)
    assert not mn.torch.equal(a["image"], b["image"])
    # the documented fallback: self.R draws the prob coin, then the id
    rs = np.random.RandomState(4)
    expected = []
    for _ in range(2):
        rs.rand()
        expected.append(int(rs.randint(0, 2**32, size=1, dtype=np.int64)[0]))
    assert [a["sas"]["sample_ids"][0], b["sas"]["sample_ids"][0]] == expected
    np.testing.assert_array_equal(a["image"][0].numpy(), _reference(pre["image"][0].numpy(), mask, expected[0], 1, CONFIG)[0])
    # with ids: reproducible across instances and random states, distinct across ids
    with_id = {**pre, "sample_id": 9}
    x = mn.RandSASd(["image", "label"], sas_seed=1).set_random_state(seed=0)(with_id)
    y = mn.RandSASd(["image", "label"], sas_seed=1).set_random_state(seed=99)(with_id)
    z = mn.RandSASd(["image", "label"], sas_seed=1)({**pre, "sample_id": 10})
    assert mn.torch.equal(x["image"], y["image"]) and not mn.torch.equal(x["image"], z["image"])
    # prob=0: the data come back as they were (the same objects)
    skipped = mn.RandSASd(["image", "label"], prob=0.0)(with_id)
    assert skipped["image"] is with_id["image"] and skipped["label"] is with_id["label"]
    with pytest.raises(ValueError, match=r"prob: expected a probability in \[0, 1\], got 5"):
        mn.RandSASd(["image", "label"], prob=5)


def test_monai_arrays_mask_keys_and_labels(mn):
    torch = mn.torch
    image, mask = _sample(seed=11, label=70000)
    extra = np.zeros((2, *mask.shape), np.uint8)  # a (K, H, W) mask of two channels
    extra[0, 3:20, 5:25] = 1
    extra[1, 10:30, 20:40] = 2
    data = {"image": image[None].astype(np.float32) / 255, "label": mask[None], "extra": extra, "sample_id": 12}
    t = mn.RandSASd(["image", "label", "extra"], label_key="label", mask_keys=["label", "extra"], sas_seed=3, params_key="p")
    out = t(data)  # NumPy in, NumPy out; int64 labels back as int64
    ref_image, ref_mask, params = _reference(data["image"][0], mask, 12, 3)
    assert isinstance(out["image"], np.ndarray) and out["label"].dtype == np.int64 and out["extra"].dtype == np.uint8
    np.testing.assert_array_equal(out["image"][0], ref_image)
    np.testing.assert_array_equal(out["label"][0], ref_mask)
    for k in range(2):
        np.testing.assert_array_equal(out["extra"][k], _geometry(extra[k], params))
    tensors = t({**data, "image": torch.from_numpy(data["image"]), "label": torch.from_numpy(mask[None])})
    assert type(tensors["image"]) is torch.Tensor and tensors["label"].dtype == torch.int64
    np.testing.assert_array_equal(tensors["image"][0].numpy(), ref_image)
    fractional = {**data, "label": mask[None] / 3.0}
    with pytest.raises(ValueError, match="whole numbers"):
        t(fractional)
    with pytest.raises(ValueError, match="label_key: 'label' must be one of keys"):
        mn.RandSASd(["image"], label_key="label")
