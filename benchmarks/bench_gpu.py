"""GPU benchmarks: workload W on one CUDA card (issue 4).  ``python -m benchmarks.bench_gpu [--quick] [--sweep] [--json PATH]``

Workload W on the GPU: batches of 256 and 1024 images of 512^2 and 1024^2, uint8 and float32
(float32 in [0, 1)), one filled ellipse per mask covering 5-20 % (label 1, uint8), scale U(0.25, 1),
random placement inside the canvas (the input size), speckle sigma 0.1 inside the pasted mask.
Parameters come from ``sas_fast.SASConfig``; images and masks are made on the GPU.

Contenders, each producing the canvas image (input dtype) and mask (uint8) on the GPU:

* ``sas_fast``: ``sas_fast.augment(..., backend="cupy", out=...)``, the public call (host-side
  plans and parameter upload included; float32 inputs also pay api.py's NaN check, which waits);
* ``sas_fast-kernel``: the backend's fused kernel on prebuilt plans (``backends.cuda.augment``);
* ``torch``: per image ``F.interpolate`` bilinear (align_corners=False) and nearest-exact for the
  mask, ``torch.randn`` speckle applied where the mask is set, clip, round, pasted into the canvas;
* ``cupyx``: per image ``cupyx.scipy.ndimage.zoom`` (order 1 / 0, grid_mode=True: half-pixel
  centres), ``cupy.random`` speckle where the mask is set, pasted;
* ``copy``: device-to-device copy of the same bytes (inputs read once, outputs written once): the
  ceiling.

Timing: CUDA events around each call on the (legacy default) stream both libraries use, a warm-up
of one call per contender and input set (its wall time is reported: compilation included), then
``--repeats`` rounds alternating the contenders over two input sets (each larger than L2);
medians with min-max.  cupyx compiles one kernel per new output shape, so it is timed on the first
:data:`CUPYX_IMAGES` images of each batch and scaled (the row says so).  Prints the card (``nvidia-smi``), MPix/s of
output, % of the copy ceiling and the time ratio to ``sas_fast``.  ``--sweep`` also times the
kernel at each launch setting of :data:`SWEEP` (``backends.cuda``'s RUN_BYTES, BLOCK_THREADS, MIN_BLOCKS).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np

SIGMA = 0.1
SEED = 20261127
CONFIGS = [(256, 512), (1024, 512), (256, 1024), (1024, 1024)]  # (batch, side)
QUICK_CONFIGS = [(256, 512)]
DTYPES = ("uint8", "float32")
INPUT_SETS = 2
#: (RUN_BYTES, BLOCK_THREADS, MIN_BLOCKS) the sweep times (backends.cuda's launch knobs).  ptxas on
#: sm_90 (NVRTC 13), W's Poisson-free augment instance: uint8 128 registers at the defaults (8, 256, 1):
#: two 256-thread blocks per SM; 70 at one pixel a thread (RUN_BYTES 1); float32 96 at 8 bytes, 71 at
#: 4.  MIN_BLOCKS 2 / 3 cap registers at 128 / 80 (some spills); 4 spills heavily, so the sweep stops at 3.
SWEEP = [
    (8, 256, 1), (1, 256, 1), (2, 256, 1), (4, 256, 1), (16, 256, 1), (8, 128, 1),
    (4, 128, 1), (8, 256, 2), (16, 256, 2), (4, 256, 3), (8, 256, 3),
]  # fmt: skip


@dataclass
class Row:
    config: str
    contender: str
    median_ms: float
    min_ms: float
    max_ms: float
    mpix_s: float
    pct_ceiling: float = float("nan")
    ratio_to_sas: float = float("nan")
    first_call_ms: float = float("nan")
    note: str = ""


def card_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except OSError:
        pass
    import cupy as cp

    return cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()


def gpu_ellipses(cp, rng: np.random.Generator, n: int, size: int) -> Any:
    """uint8 (n, size, size) masks, one filled ellipse each: workloads.ellipse_masks's distribution."""
    area = rng.uniform(0.05, 0.20, n) * size * size
    aspect = rng.uniform(0.6, 1.6, n)
    ry = np.sqrt(area / np.pi * aspect)
    rx = area / np.pi / ry
    cy, cx = rng.uniform(0.3, 0.7, n) * size, rng.uniform(0.3, 0.7, n) * size
    yy = cp.arange(size, dtype=cp.float32)[None, :, None]
    xx = cp.arange(size, dtype=cp.float32)[None, None, :]
    masks = cp.empty((n, size, size), cp.uint8)
    for s in range(0, n, 64):  # chunks keep the float temporaries small
        e = slice(s, min(n, s + 64))
        y0, x0, ay, ax = (cp.asarray(v[e], dtype=cp.float32)[:, None, None] for v in (cy, cx, ry, rx))
        masks[e] = ((yy - y0) / ay) ** 2 + ((xx - x0) / ax) ** 2 <= 1
    return masks


@dataclass
class Batch:
    images: Any  # cupy (N, S, S)
    masks: Any  # cupy uint8 (N, S, S)
    params: Any  # SASParams
    seed: int
    geo: Any
    noise: Any


def plan_batch(images: Any, masks: Any, params: Any, seed: int) -> Batch:
    """A batch of ``(N, S, S)`` images and uint8 masks (any array module) with ``params``'s plans
    prebuilt for the kernel-only contender, as ``sas_fast.augment`` would build them."""
    from sas_fast.plan import make_geometry, make_noise

    n, height, width = images.shape
    geo = make_geometry(
        (n, height, width, 1), np.dtype(images.dtype), scale=params.scale, offset=params.offset, crop=params.crop,
        mask_dtype=np.dtype(np.uint8),
    )  # fmt: skip
    noise = make_noise(n, np.dtype(images.dtype), kind=list(params.kind), sigma=params.sigma, peak=params.peak, seed=seed)
    return Batch(images, masks, params, seed, geo, noise)


def make_batches(cp, n: int, size: int, dtype: str) -> list[Batch]:
    """:data:`INPUT_SETS` batches of W made on the GPU."""
    import sas_fast

    rng = np.random.default_rng(SEED + n + size)
    config = sas_fast.SASConfig(noise={"speckle": 1.0}, sigma_range=(SIGMA, SIGMA))
    batches = []
    for k in range(INPUT_SETS):
        if dtype == "uint8":
            images = cp.random.randint(0, 256, size=(n, size, size), dtype=cp.uint8)
        else:
            images = cp.random.random((n, size, size), dtype=cp.float32)
        masks = gpu_ellipses(cp, rng, n, size)
        params = config.sample(n, seed=SEED + k, shape=(size, size))
        batches.append(plan_batch(images, masks, params, SEED + k))
    return batches


# ----------------------------------------------------------------------------- contenders


def sas_api(cp, out):
    import sas_fast

    def run(b: Batch) -> None:
        sas_fast.augment(b.images, b.masks, b.params, seed=b.seed, backend="cupy", out=out)

    return run


def sas_kernel(cp, out):
    from sas_fast.backends import cuda

    def run(b: Batch) -> None:
        cuda.augment(b.images[..., None], b.masks, b.geo, b.noise, out[0][..., None], out[1])

    return run


def _paste_box(oy, ox, h, w, size):
    """Canvas box [y0, y1) x [x0, x1) the thumbnail covers and the thumbnail box it shows."""
    y0, x0, y1, x1 = max(0, oy), max(0, ox), min(size, oy + h), min(size, ox + w)
    return (y0, y1, x0, x1), (y0 - oy, y1 - oy, x0 - ox, x1 - ox)


def torch_pipeline(cp, out):
    import torch
    import torch.nn.functional as F

    def run(b: Batch) -> None:
        images, masks = torch.from_dlpack(b.images), torch.from_dlpack(b.masks)
        out_img, out_msk = torch.from_dlpack(out[0]), torch.from_dlpack(out[1])
        out_img.zero_()
        out_msk.zero_()
        span = 255.0 if images.dtype == torch.uint8 else 1.0
        size = images.shape[1]
        for i in range(images.shape[0]):
            h, w = (int(v) for v in b.geo.thumb[i])
            (y0, y1, x0, x1), (ty0, ty1, tx0, tx1) = _paste_box(*(int(v) for v in b.geo.offset[i]), h, w, size)
            x = F.interpolate(images[i][None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            m = F.interpolate(masks[i][None, None].float(), size=(h, w), mode="nearest-exact")[0, 0]
            x = x / span
            noisy = (x + x * (SIGMA * torch.randn_like(x))).clamp_(0, 1)
            y = torch.where(m != 0, noisy, x) * span
            if images.dtype == torch.uint8:
                y = y.round_()
            out_img[i, y0:y1, x0:x1] = y[ty0:ty1, tx0:tx1].to(images.dtype)
            out_msk[i, y0:y1, x0:x1] = m[ty0:ty1, tx0:tx1].to(masks.dtype)

    return run


def cupyx_pipeline(cp, out, ndimage: ModuleType | None = None):
    """``ndimage``: a ``scipy.ndimage``-compatible module, ``cupyx.scipy.ndimage`` unless given
    (the CPU test of this baseline passes ``scipy.ndimage`` with NumPy as ``cp``)."""
    if ndimage is None:
        from cupyx.scipy import ndimage

    def run(b: Batch) -> None:
        images, masks = b.images, b.masks
        out[0].fill(0)
        out[1].fill(0)
        span = 255.0 if images.dtype == cp.uint8 else 1.0
        size = images.shape[1]
        for i in range(images.shape[0]):
            h, w = (int(v) for v in b.geo.thumb[i])
            (y0, y1, x0, x1), (ty0, ty1, tx0, tx1) = _paste_box(*(int(v) for v in b.geo.offset[i]), h, w, size)
            zoom = (h / size, w / size)
            x = ndimage.zoom(images[i].astype(cp.float32), zoom, order=1, mode="nearest", grid_mode=True)[:h, :w] / span
            m = ndimage.zoom(masks[i], zoom, order=0, mode="nearest", grid_mode=True)[:h, :w]
            noisy = cp.clip(x + x * (SIGMA * cp.random.standard_normal(x.shape, dtype=cp.float32)), 0, 1)
            y = cp.where(m != 0, noisy, x) * span
            if images.dtype == cp.uint8:
                y = cp.rint(y)
            out[0][i, y0:y1, x0:x1] = y[ty0:ty1, tx0:tx1].astype(images.dtype)
            out[1][i, y0:y1, x0:x1] = m[ty0:ty1, tx0:tx1]

    return run


def copy_ceiling(cp, out):
    def run(b: Batch) -> None:
        cp.copyto(out[0], b.images)
        cp.copyto(out[1], b.masks)

    return run


@dataclass(frozen=True)
class Contender:
    """build(cp, out) -> run(batch); max_images: time only the first ``max_images`` samples and
    scale to the batch (for per-image pipelines whose first call per new shape compiles)."""

    build: Callable
    note: str
    max_images: int | None = None


#: cupyx.scipy.ndimage.zoom bakes the output shape into its kernel source: every new thumbnail
#: size is one NVRTC compile (~0.1-1 s).  Timing it on a few images (their shapes compiled in the
#: warm-up, over every input set) keeps the run short; the table says the row is scaled.
CUPYX_IMAGES = 16

CONTENDERS: dict[str, Contender] = {
    "sas_fast": Contender(sas_api, "public sas_fast.augment, plans built per call"),
    "sas_fast-kernel": Contender(sas_kernel, "fused kernel on prebuilt plans"),
    "torch": Contender(torch_pipeline, "per-image F.interpolate + torch.randn where mask"),
    "cupyx": Contender(cupyx_pipeline, "per-image ndimage.zoom + cupy.random where mask", CUPYX_IMAGES),
    "copy": Contender(copy_ceiling, "device-to-device copy of the same bytes (ceiling)"),
}


def head(batch: Batch, k: int) -> Batch:
    """The first ``k`` samples of ``batch`` (plans kept whole: contenders index them by sample)."""
    return Batch(batch.images[:k], batch.masks[:k], batch.params[:k], batch.seed, batch.geo, batch.noise)


# ----------------------------------------------------------------------------- timing


def _time_once(cp, run, batch) -> float:
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    run(batch)
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end)


def check_exact(cp, batch: Batch, out) -> bool:
    """sas_fast's first two samples equal the NumPy reference bit for bit (speckle is exact)."""
    import sas_fast

    want = sas_fast.augment(
        cp.asnumpy(batch.images[:2]), cp.asnumpy(batch.masks[:2]), batch.params[:2], seed=batch.seed, backend="numpy"
    )
    return all(np.array_equal(w, cp.asnumpy(g[:2])) for w, g in zip(want, out))


def _first_call_ms(cp, run, batches: list[Batch]) -> float:
    """Wall time of the warm-up: one call per input set (compilation, allocator, library plans)."""
    start = time.perf_counter()
    for batch in batches:
        run(batch)
    cp.cuda.Device().synchronize()
    return (time.perf_counter() - start) * 1e3


def bench_config(cp, n: int, size: int, dtype: str, repeats: int, contenders: list[str]) -> tuple[list[Row], bool]:
    batches = make_batches(cp, n, size, dtype)
    out = (cp.empty((n, size, size), dtype), cp.empty((n, size, size), cp.uint8))
    runs, inputs, first = {}, {}, {}
    for name in contenders:
        spec = CONTENDERS[name]
        k = min(n, spec.max_images or n)
        inputs[name] = batches if k == n else [head(b, k) for b in batches]
        try:
            runs[name] = spec.build(cp, (out[0][:k], out[1][:k]))
            first[name] = _first_call_ms(cp, runs[name], inputs[name])
        except ImportError as exc:
            print(f"  {name}: skipped ({exc})", file=sys.stderr)
            runs.pop(name, None)
    exact = True
    if "sas_fast" in runs:  # the buffers hold the last warm-up's output: recompute sas_fast's, then check it
        runs["sas_fast"](batches[0])
        exact = check_exact(cp, batches[0], out)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):  # alternate contenders and input sets
        for name, run in runs.items():
            times[name].append(_time_once(cp, run, inputs[name][r % len(batches)]))
    label = f"{n}x{size}^2 {dtype}"
    rows = []
    mpix = n * size * size / 1e6
    for name, ts in times.items():
        timed = inputs[name][0].images.shape[0]
        scale = n / timed  # per-batch time of a contender timed on fewer images
        med, low, high = (scale * v for v in (statistics.median(ts), min(ts), max(ts)))
        note = CONTENDERS[name].note + (f"; timed on {timed} images, scaled to {n}" if timed != n else "")
        rows.append(Row(label, name, med, low, high, mpix / (med / 1e3), first_call_ms=first[name], note=note))
    by = {row.contender: row for row in rows}
    for row in rows:
        if "copy" in by:
            row.pct_ceiling = 100.0 * by["copy"].median_ms / row.median_ms
        if "sas_fast" in by:
            row.ratio_to_sas = row.median_ms / by["sas_fast"].median_ms
    del batches, out
    cp.get_default_memory_pool().free_all_blocks()
    try:
        import torch

        torch.cuda.empty_cache()
    except ImportError:
        pass
    return rows, exact


def sweep_launch_knobs(cp, repeats: int, n: int = 256, size: int = 512) -> list[Row]:
    """The fused kernel at each launch setting of :data:`SWEEP` on W's ``n`` x ``size``^2, both
    dtypes: pixels per thread, threads per block, and blocks per SM the registers are capped for."""
    from sas_fast.backends import cuda

    rows = []
    saved = cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS
    try:
        for dtype in DTYPES:
            batches = make_batches(cp, n, size, dtype)
            out = (cp.empty((n, size, size), dtype), cp.empty((n, size, size), cp.uint8))
            for knobs in SWEEP:
                cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS = knobs
                run = sas_kernel(cp, out)
                run(batches[0])
                ts = [_time_once(cp, run, batches[r % len(batches)]) for r in range(repeats)]
                med = statistics.median(ts)
                kernel = cuda._kernel(cuda.name_expression("augment", dtype, np.uint8), cp.cuda.Device().id)
                note = f"{kernel.num_regs} registers, {kernel.local_size_bytes} B local (spills) per thread"
                mpix_s = n * size * size / 1e6 / (med / 1e3)
                label = "kernel RUN_BYTES={} BLOCK_THREADS={} MIN_BLOCKS={}".format(*knobs)
                rows.append(Row(f"{n}x{size}^2 {dtype}", label, med, min(ts), max(ts), mpix_s, note=note))
    finally:
        cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS = saved
    return rows


def print_table(rows: list[Row], card: str) -> None:
    print(f"\nGPU: {card}")
    print(
        f"{'config':<20} {'contender':<22} {'median ms':>10} {'min-max ms':>17} {'MPix/s':>9} {'% ceiling':>9} "
        f"{'x sas':>6} {'warm-up ms':>10}"
    )
    for r in rows:
        pct = "" if np.isnan(r.pct_ceiling) else f"{r.pct_ceiling:.0f}%"
        ratio = "" if np.isnan(r.ratio_to_sas) else f"{r.ratio_to_sas:.2f}"
        first = "" if np.isnan(r.first_call_ms) else f"{r.first_call_ms:.0f}"
        spread = f"{r.min_ms:.2f}-{r.max_ms:.2f}"
        note = f"  {r.note}" if r.contender.startswith("kernel RUN") or "scaled" in r.note else ""
        print(
            f"{r.config:<20} {r.contender:<22} {r.median_ms:>10.2f} {spread:>17} {r.mpix_s:>9.0f} {pct:>9} "
            f"{ratio:>6} {first:>10}{note}"
        )


def _configs(text: str) -> list[tuple[int, int]]:
    """``"256x512,64x1024"`` -> ``[(256, 512), (64, 1024)]`` (batch, side)."""
    try:
        pairs = [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected batch x side pairs like 256x512,64x1024, got {text!r}")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 256 x 512^2 (both dtypes)")
    parser.add_argument(
        "--configs", type=_configs, help="batch x side pairs instead of the defaults, e.g. 256x512,64x1024"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="also time the kernel at each launch setting of SWEEP")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    try:
        import cupy as cp

        from sas_fast.backends import cuda

        cuda.check_available()
    except (ImportError, RuntimeError) as exc:
        print(f"no usable CUDA GPU with CuPy here: {exc}", file=sys.stderr)
        return 2
    card = card_name()
    contenders = [c for c in args.contenders.split(",") if c]
    rows: list[Row] = []
    all_exact = True
    for n, size in args.configs or (QUICK_CONFIGS if args.quick else CONFIGS):
        for dtype in DTYPES:
            config_rows, exact = bench_config(cp, n, size, dtype, args.repeats, contenders)
            all_exact &= exact
            rows += config_rows
            print(f"done {n}x{size}^2 {dtype} (sas_fast == reference on 2 samples: {exact})", file=sys.stderr, flush=True)
    if args.sweep:
        rows += sweep_launch_knobs(cp, args.repeats)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"card": card, "rows": [asdict(r) for r in rows], "exact": all_exact}, fh, indent=1)
    print_table(rows, card)
    if not all_exact:
        print("MISMATCH: sas_fast's GPU output differs from the NumPy reference", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
