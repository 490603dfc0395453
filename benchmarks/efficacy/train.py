"""Training loop, model selection on the validation set, and the per-image test metrics."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

import sas_fast

from .data import Splits, make_dataset
from .model import UNet, loss_fn

FAR_BAND = 2  # a predicted pixel further than this (Chebyshev px) from the lesion is a spurious one


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 100) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch].astype(np.float32) / 255.0)[:, None]
        out.append((model(x) > 0).numpy()[:, 0])
    return np.concatenate(out)


def metrics(pred: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: Dice, found (>= half the lesion predicted), spurious px (beyond FAR_BAND of it), predicted px."""
    p = torch.from_numpy(pred.astype(np.float32))
    g = torch.from_numpy((masks != 0).astype(np.float32))
    inter = (p * g).sum(dim=(1, 2))
    psum, gsum = p.sum(dim=(1, 2)), g.sum(dim=(1, 2))
    dice = torch.where(psum + gsum > 0, 2 * inter / (psum + gsum).clamp(min=1), torch.ones_like(inter))
    near = F.max_pool2d(g[:, None], 2 * FAR_BAND + 1, stride=1, padding=FAR_BAND)[:, 0]
    far = (p * (1 - near)).sum(dim=(1, 2))
    return {
        "dice": dice.numpy(),
        "found": (inter >= 0.5 * gsum).numpy(),
        "fp_far": far.numpy(),
        "pred_px": psum.numpy(),
    }


def train_one(
    condition: dict[str, Any],
    seed: int,
    splits: Splits,
    *,
    steps: int,
    eval_every: int,
    batch: int = 16,
    lr: float = 5e-3,
    log=print,
) -> dict[str, Any]:
    """Train one model for ``condition`` with ``seed``; the checkpoint with the best validation Dice is tested."""
    torch.manual_seed(seed)
    dist = condition.get("train", "large")
    train, val = splits[f"train_{dist}"], splits[f"val_{dist}"]
    cfg = condition.get("sas")
    config = None if cfg is None else sas_fast.SASConfig.from_dict(cfg)
    dataset = make_dataset(train["images"], train["masks"], config, seed=seed, fill=condition.get("fill", "black"))
    sampler = sas_fast.EpochSampler(dataset, shuffle=True, seed=seed)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=0, drop_last=True)
    model = UNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
    curve, best, best_state, step, epoch = [], -1.0, None, 0, 0
    t0 = time.perf_counter()
    t_data = 0.0
    while step < steps:
        sampler.set_epoch(epoch)
        t_d = time.perf_counter()
        for x, y in loader:
            t_data += time.perf_counter() - t_d
            model.train()
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                m = metrics(predict(model, val["images"]), val["masks"])
                vd = float(m["dice"].mean())
                curve.append([step, round(loss.item(), 4), round(vd, 4)])
                if vd > best:
                    best, best_state = vd, copy.deepcopy(model.state_dict())
            if step >= steps:
                break
            t_d = time.perf_counter()
        epoch += 1
    train_s = time.perf_counter() - t0
    model.load_state_dict(best_state)
    tests = {}
    for name in ("test_small", "test_large"):
        split = splits[name]
        m = metrics(predict(model, split["images"]), split["masks"])
        tests[name] = {k: np.round(v.astype(np.float64), 4).tolist() for k, v in m.items()}
    best_step = max(curve, key=lambda r: r[2])[0]
    log(
        f"  {condition['name']:<14} seed {seed}: val Dice {best:.3f} @ step {best_step}/{steps}, "
        f"small {np.mean(tests['test_small']['dice']):.3f}, large {np.mean(tests['test_large']['dice']):.3f} "
        f"({train_s:.0f} s, {1000 * train_s / steps:.0f} ms/step, data {1000 * t_data / steps:.1f} ms/step)"
    )
    return {
        "condition": condition,
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "epochs": epoch,
        "best_val_dice": round(best, 4),
        "best_step": best_step,
        "curve": curve,
        "train_seconds": round(train_s, 1),
        "ms_per_step": round(1000 * train_s / steps, 1),
        "data_ms_per_step": round(1000 * t_data / steps, 2),
        "test": tests,
    }
