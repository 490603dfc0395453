"""The data split and the training Dataset (SAS applied per sample through the public transform).

Splits (all simulated by :mod:`benchmarks.efficacy.simulate`, one seed per split, image ``i`` of a
split seeded ``(split seed, i)``):

=============  ==========================  =====================================================
split          lesion size (% of side)     use
=============  ==========================  =====================================================
train_large    25-45                       training set of every augmentation condition
val_large      25-45                       their model selection (the training distribution only)
train_small    6-12                        the oracle (the ceiling)
val_small      6-12                        the oracle's model selection
train_mixed    half 6-12, half 25-45       the mixed-size baseline
val_mixed      half 6-12, half 25-45       its model selection
test_small     6-12, half anechoic/hypo    the question: small structures (3 size bins)
test_large     25-45, half anechoic/hypo   the cost: large structures
=============  ==========================  =====================================================

Training images never carry a test seed, and test images are never seen before the final
evaluation.  The "size" of a lesion is its equivalent diameter ``2 sqrt(ab)`` over the side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import sas_fast

from .simulate import SimConfig, generate

SMALL = (0.06, 0.12)
LARGE = (0.25, 0.45)
SPLIT_SEEDS = {
    "train_large": 1000, "val_large": 1001, "train_small": 1002, "val_small": 1003,
    "train_mixed": 1004, "val_mixed": 1005, "test_small": 1006, "test_large": 1008,
}  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """How many images each split has."""

    train: int = 1024
    val: int = 128
    test_small: int = 400
    test_large: int = 200
    image: int = 64


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def make_split(name: str, sizes: Sizes) -> dict[str, np.ndarray]:
    """One split as ``{"images", "masks", "sizes", "kinds"}`` (uint8 images and 0/1 masks)."""
    cfg = SimConfig(size=sizes.image)
    seed = SPLIT_SEEDS[name]
    n = {"train": sizes.train, "val": sizes.val}.get(name.split("_")[0])
    if name.startswith("test_"):
        n = sizes.test_small if name == "test_small" else sizes.test_large
        rng = SMALL if name == "test_small" else LARGE
        half = n // 2  # anechoic and hypoechoic halves, separately seeded
        return _concat([
            generate(half, seed=seed, size_range=rng, kind="anechoic", config=cfg),
            generate(n - half, seed=seed + 1, size_range=rng, kind="hypoechoic", config=cfg),
        ])  # fmt: skip
    dist = name.split("_")[1]
    if dist == "mixed":
        half = n // 2
        return _concat([
            generate(half, seed=seed, size_range=SMALL, config=cfg),
            generate(n - half, seed=seed + 100, size_range=LARGE, config=cfg),
        ])  # fmt: skip
    return generate(n, seed=seed, size_range=SMALL if dist == "small" else LARGE, config=cfg)


class Splits:
    """Lazily generated, memoised splits (a few seconds each at 64x64)."""

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def __getitem__(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._cache:
            self._cache[name] = make_split(name, self.sizes)
        return self._cache[name]


def sas_mean_fill(sas: sas_fast.SAS, image: np.ndarray, mask: np.ndarray, sample_id: int, fill: float):
    """``sas(image=, mask=, sample_id=)`` with the canvas filled with ``fill`` instead of black.

    ``SASConfig`` has no canvas-fill option, so this draws the same parameters as the transform
    (``sas.params``) and applies them with the public kernels in the order ``sas_fast.augment``
    fuses them (geometry with ``fill=``, then the in-mask noise of the same sample id).  With
    ``fill=0`` it equals ``sas(...)`` bit for bit (checked by the smoke test).
    """
    p = sas.params(mask[None], [sample_id])
    img, msk = sas_fast.rescale_paste(
        image, mask, scale=float(p.scale[0]), offset=tuple(int(v) for v in p.offset[0]),
        crop=tuple(int(v) for v in p.crop[0]), canvas=p.canvas, fill=fill,
    )  # fmt: skip
    img = sas_fast.noise_in_mask(
        img, msk, kind=str(p.kind[0]), sigma=float(p.sigma[0]), peak=float(p.peak[0]), labels=p.labels,
        seed=sas.seed, sample_ids=[int(sample_id)], value_range=sas.value_range,
    )  # fmt: skip
    return img, msk


def make_dataset(images: np.ndarray, masks: np.ndarray, config: sas_fast.SASConfig | None, seed: int, fill: str = "black"):
    """A torch ``Dataset`` reading item ``id % n`` and augmenting it with sample id ``id``."""
    import torch
    from torch.utils.data import Dataset

    class SASDataset(Dataset):
        def __init__(self) -> None:
            self.images, self.masks = images, masks
            self.sas = None if config is None else sas_fast.SAS(config, seed=seed)
            self.fill = fill

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, sample_id: int):
            i = sample_id % len(self)
            img, msk = self.images[i], self.masks[i]
            if self.sas is not None:
                if self.fill == "mean":
                    img, msk = sas_mean_fill(self.sas, img, msk, sample_id, fill=int(round(float(img.mean()))))
                else:
                    out = self.sas(image=img, mask=msk, sample_id=sample_id)
                    img, msk = out["image"], out["mask"]
            x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.0)[None]
            y = torch.from_numpy(np.ascontiguousarray(msk != 0, dtype=np.float32))[None]
            return x, y

    return SASDataset()
