"""Backend choice (SPEC §6) and array types in/out."""

import builtins
import sys

import numpy as np
import pytest

import sas_fast
from sas_fast import api, backends
from tests.conftest import ellipse_masks, random_image


def test_reference_is_always_available():
    assert "numpy" in sas_fast.available_backends()


def test_auto_on_cpu_picks_numba_when_it_imports():
    want = "numba" if "numba" in sas_fast.available_backends() else "numpy"
    assert api.pick_backend("auto", np.zeros((2, 2))).__name__ == backends.BACKENDS[want][0]


def test_auto_falls_back_to_numpy_only_when_numba_cannot_import(monkeypatch):
    monkeypatch.setattr(backends, "_loaded", {k: v for k, v in backends._loaded.items() if k != "numba"})
    monkeypatch.setattr(backends, "_failed", {"numba": "backend 'numba' is not available here (ImportError: x)"})
    assert api.pick_backend("auto", np.zeros((2, 2))).__name__ == "sas_fast.backends.reference"
    with pytest.raises(sas_fast.BackendUnavailable, match="numba"):
        sas_fast.rescale_paste(np.zeros((4, 4), np.uint8), scale=0.5, backend="numba")


def test_missing_cupy_is_a_loud_error_naming_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.setattr(backends, "_loaded", {k: v for k, v in backends._loaded.items() if k != "cupy"})
    monkeypatch.setattr(backends, "_failed", {})
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    if hasattr(backends, "cuda"):
        # the re-import below rebinds the package attribute too: restore it with the sys.modules
        # entry, or later tests would patch one module object while the code uses another
        monkeypatch.setattr(backends, "cuda", backends.cuda)
    monkeypatch.delitem(sys.modules, "sas_fast.backends.cuda", raising=False)
    with pytest.raises(sas_fast.BackendUnavailable, match=r"sas_fast\[cuda12\]"):
        sas_fast.noise_in_mask(np.zeros((4, 4), np.uint8), np.ones((4, 4), bool), backend="cupy")
    assert "cupy" not in sas_fast.available_backends()
    # everything else still works without CuPy
    out = sas_fast.noise_in_mask(np.full((4, 4), 9, np.uint8), np.ones((4, 4), bool), backend="numpy")
    assert out.shape == (4, 4)


def test_single_image_layouts_round_trip(rng):
    grey = random_image(rng, (30, 40), np.uint8)
    colour = random_image(rng, (30, 40, 3), np.float32)
    mask = ellipse_masks(rng, 1, 30, 40)[0]
    out, out_mask = sas_fast.rescale_paste(grey, mask, scale=0.5, canvas=(20, 25), backend="numpy")
    assert out.shape == (20, 25) and out_mask.shape == (20, 25)
    out, out_mask = sas_fast.rescale_paste(colour, mask, scale=0.5, backend="numpy")
    assert out.shape == (30, 40, 3) and out_mask.shape == (30, 40)
    batch_out, _ = sas_fast.rescale_paste(colour[None], mask[None], scale=0.5, backend="numpy")
    np.testing.assert_array_equal(batch_out[0], out)


def test_python_lists_are_arrays_too_and_float64_is_refused():
    out = sas_fast.noise_in_mask(np.array([[100, 100]], np.uint8), [[True, False]], backend="numpy")
    assert out[0, 1] == 100
    with pytest.raises(TypeError, match="image: dtype float64"):
        sas_fast.noise_in_mask([[0.5, 0.5]], [[1, 0]], backend="numpy")


def test_cpu_torch_tensors_in_and_out(rng):
    torch = pytest.importorskip("torch", reason="torch is not installed: CPU tensor interop not exercised")
    images = random_image(rng, (3, 24, 36), np.uint8)
    masks = ellipse_masks(rng, 3, 24, 36)
    params = sas_fast.SASConfig().sample(3, seed=1, masks=masks)
    ref_img, ref_mask = sas_fast.augment(images, masks, params, seed=1, backend="numpy")
    t_img, t_mask = sas_fast.augment(torch.from_numpy(images), torch.from_numpy(masks), params, seed=1)
    assert isinstance(t_img, torch.Tensor) and isinstance(t_mask, torch.Tensor)
    np.testing.assert_array_equal(t_img.numpy(), ref_img)
    np.testing.assert_array_equal(t_mask.numpy(), ref_mask)
    # zero-copy: the backend reads the tensor's own memory
    tensor = torch.from_numpy(images)
    assert np.shares_memory(api._prepare(tensor, None, "numpy", mask_required=False, channel_axis=None).image, tensor.numpy())
