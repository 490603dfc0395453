"""EFFICACY.md and the plot from whatever run JSONs exist (a partial study gives a partial report)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .study import BY_NAME, CONDITIONS

SMALL_BINS = [(0.06, 0.08), (0.08, 0.10), (0.10, 0.12)]
LARGE_BINS = [(0.25, 0.30), (0.30, 0.35), (0.35, 0.40), (0.40, 0.45)]
N_BOOT = 2000
# compared with "none" (the question) and with "sas" (which component / setting matters)
VS_SAS = ["scale_only", "noise_only", "p_scale_0.5", "scale_0.5", "scale_0.15", "mop_20", "fill_mean"]


def load(out: Path) -> tuple[dict[str, Any], dict[str, dict[int, dict[str, Any]]]]:
    meta = json.loads((out / "study.json").read_text())
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted((out / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        runs.setdefault(r["condition"]["name"], {})[int(r["seed"])] = r
    return meta, runs


def _arr(run: dict[str, Any], test: str, key: str) -> np.ndarray:
    return np.asarray(run["test"][test][key], dtype=np.float64)


def _ms(values: list[float], fmt: str = "{:.3f}") -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return fmt.format(v[0]) + " (1 seed)"
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


class Study:
    def __init__(self, out: Path) -> None:
        self.meta, self.runs = load(out)
        ts = self.meta["testsets"]
        self.sizes = {k: np.asarray(v["sizes"]) for k, v in ts.items()}
        self.kinds = {k: np.asarray(v["kinds"]) for k, v in ts.items()}
        self.order = [c["name"] for c in CONDITIONS if c["name"] in self.runs]

    def seeds(self, name: str) -> list[int]:
        return sorted(self.runs.get(name, {}))

    def per_seed(self, name: str, test: str, key: str, select: np.ndarray | None = None) -> list[float]:
        out = []
        for s in self.seeds(name):
            v = _arr(self.runs[name][s], test, key)
            out.append(float(v[select].mean() if select is not None else v.mean()))
        return out

    def paired(
        self, a: str, b: str, test: str, key: str = "dice", select: np.ndarray | None = None, seed: int = 0
    ) -> dict[str, Any] | None:
        """a - b on the same test images (``select``: a subset), seeds paired (same seed = same init, order and draws)."""
        common = sorted(set(self.seeds(a)) & set(self.seeds(b)))
        if not common:
            return None
        sel = slice(None) if select is None else select
        d = np.stack([_arr(self.runs[a][s], test, key)[sel] - _arr(self.runs[b][s], test, key)[sel] for s in common])
        per_image = d.mean(axis=0)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(per_image), size=(N_BOOT, len(per_image)))
        boot = per_image[idx].mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        per_seed = d.mean(axis=1)
        sd_delta = float(per_seed.std(ddof=1)) if len(common) > 1 else math.nan
        sd_a = np.std(self.per_seed(a, test, key, select), ddof=1) if len(self.seeds(a)) > 1 else math.nan
        sd_b = np.std(self.per_seed(b, test, key, select), ddof=1) if len(self.seeds(b)) > 1 else math.nan
        delta = float(per_image.mean())
        spread = float(np.nanmax([sd_delta, sd_a, sd_b])) if len(common) > 1 else math.nan
        if len(common) < 2:
            verdict = "undecided (1 seed)"
        elif lo <= 0 <= hi or abs(delta) <= spread:
            verdict = "no effect beyond seed spread"
        else:
            verdict = "better" if delta > 0 else "worse"
        return {"delta": delta, "lo": float(lo), "hi": float(hi), "sd_seed": spread, "n_seeds": len(common),
                "verdict": verdict}  # fmt: skip

    def bins(self, name: str, test: str, bins: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        means, sds = [], []
        for lo, hi in bins:
            sel = (self.sizes[test] >= lo) & (self.sizes[test] < hi)
            v = self.per_seed(name, test, "dice", sel) if sel.any() else [math.nan]
            means.append(np.mean(v))
            sds.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
        return np.asarray(means), np.asarray(sds)


def _late_gain(run: dict[str, Any]) -> float:
    """Best validation Dice minus the validation Dice at half of training: ~0 means converged."""
    curve = run["curve"]
    half = [r for r in curve if r[0] <= run["steps"] // 2] or curve[:1]
    return run["best_val_dice"] - half[-1][2]


def _fmt_pair(p: dict[str, Any] | None) -> str:
    if p is None:
        return "–"
    sd = "" if math.isnan(p["sd_seed"]) else f", seed SD {p['sd_seed']:.3f}"
    return f"{p['delta']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]{sd}: **{p['verdict']}**"


def plot(study: Study, png: Path) -> bool:
    """Dice vs lesion size per condition; False (no plot) where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 4]}, sharey=True)
    markers = "os^vD<>pPX*h"
    for k, name in enumerate(study.order):
        style = dict(marker=markers[k % len(markers)], capsize=2, lw=1.2, ms=4,
                     ls="--" if name in ("oracle", "mixed", "none") else "-")  # fmt: skip
        for ax, test, bins in ((axes[0], "test_small", SMALL_BINS), (axes[1], "test_large", LARGE_BINS)):
            m, sd = study.bins(name, test, bins)
            x = [100 * (lo + hi) / 2 for lo, hi in bins]
            ax.errorbar(x, m, yerr=sd, label=f"{name} (n={len(study.seeds(name))})" if ax is axes[0] else None, **style)
    axes[0].set_title("small lesions (test, unseen sizes)")
    axes[1].set_title("large lesions (test, training sizes)")
    for ax in axes:
        ax.set_xlabel("lesion equivalent diameter, % of image side")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice (mean over seeds ± SD)")
    fig.legend(loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True


def conclusion(st: Study) -> list[str]:
    """Plain-words findings, derived from the verdicts (never from a difference inside the seed spread)."""
    lines: list[str] = []
    have = set(st.order)
    if not {"none", "sas"} <= have:
        return ["Not enough conditions have finished for a conclusion (need at least `none` and `sas`)."]
    small = st.paired("sas", "none", "test_small")
    large = st.paired("sas", "none", "test_large")
    sm = lambda n, t="test_small": np.mean(st.per_seed(n, t, "dice"))  # noqa: E731
    lines.append(
        f"**Does SAS (defaults) help small structures here?** {small['verdict'].capitalize()}: small-lesion Dice "
        f"{sm('none'):.3f} without augmentation, {sm('sas'):.3f} with SAS (paired Δ {_fmt_pair(small)})."
    )
    lines.append(
        f"**Cost for large structures:** large-lesion Dice {sm('none', 'test_large'):.3f} → {sm('sas', 'test_large'):.3f} "
        f"(Δ {_fmt_pair(large)})."
    )
    kinds = st.kinds["test_small"]
    by_kind = [f"{k} {_fmt_pair(st.paired('sas', 'none', 'test_small', select=kinds == k))}" for k in ("anechoic", "hypoechoic")]
    lines.append("**By lesion type** (small, SAS defaults − none): " + "; ".join(by_kind) + ".")
    if "oracle" in have:
        gap = sm("oracle") - sm("none")
        closed = (sm("sas") - sm("none")) / gap if gap > 0 else math.nan
        lines.append(
            f"**Ceiling:** the oracle trained on small lesions reaches {sm('oracle'):.3f} on the small test set, "
            f"so the gap to close was {gap:+.3f}; SAS defaults closed {closed:.0%} of it"
            + (" (inside the seed spread: read as none)" if small["verdict"].startswith("no effect") else "")
            + "."
        )
    comp = []
    for name in ("scale_only", "noise_only"):
        if name in have:
            comp.append(f"`{name}` vs none on small: {_fmt_pair(st.paired(name, 'none', 'test_small'))}")
    if comp:
        lines.append("**Which component matters:** " + "; ".join(comp) + ".")
    sas_like = [n for n in st.order if n in BY_NAME and BY_NAME[n].get("sas") is not None]
    if sas_like:
        best = max(sas_like, key=sm)
        p_none = st.paired(best, "none", "test_small")
        p_large = st.paired(best, "none", "test_large")
        p_sas = st.paired(best, "sas", "test_small") if best != "sas" else None
        rec = (
            f"**Best SAS setting on small lesions:** `{best}` ({BY_NAME[best]['label']}), small Dice {sm(best):.3f}; "
            f"vs none {_fmt_pair(p_none)}; its large-lesion Δ vs none {_fmt_pair(p_large)}"
        )
        if p_sas is not None:
            rec += f"; vs SAS defaults {_fmt_pair(p_sas)}"
        lines.append(rec + ".")
    for name, what in (("fill_mean", "Canvas fill (mean vs black)"), ("mop_20", "min_object_pixels=20 vs off")):
        if name in have:
            lines.append(f"**{what}:** small {_fmt_pair(st.paired(name, 'sas', 'test_small'))}; "
                         f"large {_fmt_pair(st.paired(name, 'sas', 'test_large'))}.")  # fmt: skip
    if "mixed" in have:
        lines.append(
            f"**Mixed-size data instead:** training on half small, half large lesions gives small Dice "
            f"{sm('mixed'):.3f}, large {sm('mixed', 'test_large'):.3f} (vs SAS defaults, small: "
            f"{_fmt_pair(st.paired('mixed', 'sas', 'test_small'))})."
        )
    return lines


def write(out: Path, md: Path, png: Path) -> str:
    st = Study(out)
    meta = st.meta
    pre = meta["preset"]
    sz = pre["sizes"]
    plotted = plot(st, png)
    rel_png = os.path.relpath(png, md.parent)
    cmd = meta["command"]
    L: list[str] = []
    L += ["# Does SAS help small structures? An efficacy study on simulated B-mode ultrasound", ""]
    L += [f"Generated by `python -m benchmarks.efficacy --report-only` from `{os.path.relpath(out, md.parent)}`;"
          " every number below comes from the run JSONs there.", ""]  # fmt: skip
    L += ["## Reproduce", "", "```bash", 'pip install -e ".[efficacy]"', cmd,
          f"{cmd} --report-only   # this file and the plot, from whatever runs exist", "```", ""]  # fmt: skip
    wall = meta.get("wall_seconds", 0.0)
    n_runs = sum(len(v) for v in st.runs.values())
    ms = [r["ms_per_step"] for v in st.runs.values() for r in v.values()]
    L += [f"Machine: {meta['machine']}. Wall time: {wall / 60:.1f} min for {n_runs} trained models "
          f"({np.median(ms) if ms else 0:.0f} ms per training step, median), "
          f"started {meta.get('started', '?')}, last result {meta.get('finished', '?')}.", ""]  # fmt: skip
    from .simulate import timing

    sim_png = Path(__file__).resolve().parent / "simulator.png"
    L += ["## Design", ""]
    L += [
        f"* **Data** ({sz['image']}×{sz['image']} B-mode, `benchmarks/efficacy/simulate.py`): a convolution simulator, "
        "real Gaussian scatterers on a 4× depth-oversampled grid, a separable analytic PSF (Gaussian-modulated cosine "
        "axially, Gaussian laterally) applied with one FFT pair, the envelope as the modulus of the analytic signal, "
        "electronic noise, attenuation with partial TGC, log compression to 50–60 dB. One elliptical lesion per image, "
        "anechoic or hypoechoic (6–14 dB), smooth ±3 dB background texture; the mask is the exact ellipse. "
        f"Speed: {timing(100, sz['image']):.1f} ms per {sz['image']}² image on one core (measured when this report was "
        "generated, on a possibly busy machine; `python -m benchmarks.efficacy.simulate` measures 64² and 128²). "
        "Image *i* of a split is seeded `PCG64([split seed, i])`: the data are regenerated, never downloaded."
        + (f"\n\n  ![simulated images; rows: training (large), test (small), training + SAS defaults, "
           f"training + SAS with the mean fill]({os.path.relpath(sim_png, md.parent)})\n" if sim_png.exists() else ""),
        f"* **Split:** training on LARGE lesions only (25–45 % of the side, {sz['train']} images), model selection on "
        f"{sz['val']} validation images of the same distribution; tests: {sz['test_small']} SMALL lesions (6–12 %, half "
        f"anechoic, half hypoechoic, three size bins) and {sz['test_large']} large ones. The oracle trains on small "
        "lesions (the ceiling), the mixed baseline on half small, half large; both select on their own validation set.",
        f"* **Model:** U-Net, 4 levels (8–16–32–64 channels), BCE + soft Dice, Adam, one-cycle LR (max 5e-3), batch 16, "
        f"{pre['steps']} steps; the validation Dice is measured every {pre['eval_every']} steps and the best checkpoint "
        "is tested (early stopping by selection). Convergence is read from the table: *val gain, 2nd half* = best "
        "validation Dice minus the one at half of training (≈ 0: the curve had flattened; with a one-cycle schedule "
        "the best step is usually near the end, when the learning rate anneals).",
        "* **SAS** is applied per sample in a torch `Dataset` through the public `sas_fast.SAS` transform with "
        "`sample_id`, driven by `sas_fast.EpochSampler` (fresh draws every epoch, same draws for the same seed). "
        "`SASConfig` has no canvas-fill option, so `fill_mean` draws the same parameters (`SAS.params`) and applies "
        "them with `rescale_paste(fill=image mean)` + `noise_in_mask` (equal to the transform bit for bit at fill 0).",
        "* **Metrics** per test image: Dice (threshold 0.5); *recall* = the lesion counts as found when at least half "
        "of its pixels are predicted; *spurious px* = predicted pixels more than 2 px from the lesion (false "
        "detections, not boundary error). Per-image Dice is bimodal (found or missed), so read Dice with recall.",
        f"* **Statistics:** mean ± SD over seeds (seed = initialisation, data order and SAS draws). Paired "
        f"comparisons on the same test images, seeds paired: Δ = mean over images of the seed-averaged difference, "
        f"95 % bootstrap CI over images ({N_BOOT} resamples), and the seed-to-seed spread (largest of the SD over "
        "seeds of each condition and of the per-seed Δ). A difference is called an effect only when the CI excludes 0 "
        "**and** |Δ| exceeds that spread; otherwise *no effect beyond seed spread*.",
    ]
    L += [""]
    planned = pre["conditions"]
    missing = [n for n in planned if n not in st.runs]
    short = [f"{n} ({len(st.seeds(n))}/{len(pre['seeds'])})" for n in planned
             if n in st.runs and len(st.seeds(n)) < len(pre["seeds"])]  # fmt: skip
    cut = [c["name"] for c in CONDITIONS if c["name"] not in planned]
    L += ["## Budget and cuts", ""]
    L += [f"Planned: {len(planned)} conditions × seeds {list(pre['seeds'])}."
          + (f" Not run by this preset: {', '.join(cut)}." if cut else "")
          + (f" Missing (run interrupted or still going): {', '.join(missing)}." if missing else "")
          + (f" Fewer seeds than planned: {', '.join(short)}." if short else "")
          + ("" if missing or short else " All planned runs finished."), ""]  # fmt: skip
    L += ["## Results", "", "### Per condition (mean ± SD over seeds)", ""]
    L += ["| condition | seeds | small Dice | small recall | small spurious px | large Dice | large recall | large spurious px | val Dice | best step | val gain, 2nd half |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for n in st.order:
        rs = [st.runs[n][s] for s in st.seeds(n)]
        L.append(
            f"| `{n}` {BY_NAME[n]['label']} | {len(rs)} | {_ms(st.per_seed(n, 'test_small', 'dice'))} | "
            f"{_ms(st.per_seed(n, 'test_small', 'found'))} | {_ms(st.per_seed(n, 'test_small', 'fp_far'), '{:.1f}')} | "
            f"{_ms(st.per_seed(n, 'test_large', 'dice'))} | {_ms(st.per_seed(n, 'test_large', 'found'))} | "
            f"{_ms(st.per_seed(n, 'test_large', 'fp_far'), '{:.1f}')} | {_ms([r['best_val_dice'] for r in rs])} | "
            f"{'/'.join(str(r['best_step']) for r in rs)} of {rs[0]['steps']} | {_ms([_late_gain(r) for r in rs])} |"
        )
    L += ["", "### Small lesions by type and size (Dice, mean ± SD over seeds)", ""]
    heads = ["anechoic", "hypoechoic"] + [f"{100 * lo:.0f}–{100 * hi:.0f} %" for lo, hi in SMALL_BINS]
    L += ["| condition | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for n in st.order:
        cells = []
        for kind in ("anechoic", "hypoechoic"):
            cells.append(_ms(st.per_seed(n, "test_small", "dice", st.kinds["test_small"] == kind)))
        for lo, hi in SMALL_BINS:
            sel = (st.sizes["test_small"] >= lo) & (st.sizes["test_small"] < hi)
            cells.append(_ms(st.per_seed(n, "test_small", "dice", sel)) if sel.any() else "–")
        L.append(f"| `{n}` | " + " | ".join(cells) + " |")
    L += ["", "### Paired comparisons: Δ [95 % CI over test images], seed spread, verdict", ""]
    L += ["| comparison | Δ small Dice | Δ small recall | Δ large Dice |", "|---|---|---|---|"]
    pairs = [(n, "none") for n in st.order if n != "none"] + [(n, "sas") for n in VS_SAS if n in st.runs and "sas" in st.runs]
    for a, b in pairs:
        L.append(
            f"| `{a}` − `{b}` | {_fmt_pair(st.paired(a, b, 'test_small'))} | "
            f"{_fmt_pair(st.paired(a, b, 'test_small', 'found'))} | {_fmt_pair(st.paired(a, b, 'test_large'))} |"
        )
    L += ["", f"![Dice vs lesion size per condition]({rel_png})" if plotted else
          "(no plot: matplotlib is not installed; `pip install -e \".[efficacy]\"`)", "",
          "Dice vs lesion size: left, the small test lesions (sizes never seen in training except by the oracle and "
          "the mixed baseline, and by SAS through shrinking); right, the large ones. Error bars: SD over seeds.", ""]  # fmt: skip
    L += ["## Conclusion", ""] + [f"* {line}" for line in conclusion(st)] + [""]
    L += ["## Caveats", "",
          f"* Simulated data, one lesion per image, one small architecture at {sz['image']}×{sz['image']}: the result is about this "
          "controlled setting (a CNN trained from scratch), not the paper's fine-tuned foundation model.",
          "* Shrinking an image by s also shrinks its speckle grain by s (down to sub-pixel at s = 0.25), so SAS "
          "training lesions are small but their texture is not that of a small lesion in a full-resolution image; "
          "and every rescaled training image has a canvas border (black by default) that test images never have.",
          "* The test images are fixed; the CI covers image-to-image variation, the seed rule covers training "
          "variation. With 3 seeds the seed SD is itself uncertain.", ""]  # fmt: skip
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(L))
    return "\n".join(L)
