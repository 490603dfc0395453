"""The README's PyTorch Dataset recipe runs as written: two epochs with persistent DataLoader
workers, and epoch 1 augments every sample afresh (the snippet asserts it itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- tests/test_readme.py runs the next code block as written -->"


def readme_block(marker: str) -> str:
    """The first ```python block after ``marker`` in README.md, verbatim."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(marker) == 1, f"README.md: expected the marker {marker!r} exactly once"
    found = re.search(r"```python\n(.*?)\n```", text[text.index(marker) :], flags=re.S)
    assert found, f"README.md: no ```python block after {marker!r}"
    return found.group(1) + "\n"


def test_pytorch_dataset_snippet_runs_as_written(tmp_path):
    pytest.importorskip("torch", reason="torch is not installed: the README's DataLoader recipe needs it")
    code = readme_block(MARKER)
    # The block must be the recipe the README promises, not some other snippet.
    for needle in ("import sas_fast.data", "EpochSampler", "set_epoch", "num_workers=2", "persistent_workers=True"):
        assert needle in code, f"README recipe lacks {needle!r}"
    assert "every sample augmented afresh in epoch 1" in _run_block(tmp_path, "dataset", code)


def _run_block(tmp_path, name: str, code: str) -> str:
    """Run a README block as written, as a script file (so spawn-start workers can re-import it);
    its stdout, after checking it succeeded."""
    script = tmp_path / f"readme_{name}.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the README {name} snippet did not finish in {exc.timeout} s:\n{exc.stderr or ''}")
    assert result.returncode == 0, f"the README {name} snippet failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


# -- the framework adapters' sections (sas_fast.integrations): each block runs where its framework imports

FRAMEWORK_MARKERS = {
    "albumentations": "<!-- tests/test_readme.py runs the next code block as written: albumentations -->",
    "torchvision": "<!-- tests/test_readme.py runs the next code block as written: torchvision -->",
    "monai": "<!-- tests/test_readme.py runs the next code block as written: MONAI -->",
}
FRAMEWORK_NEEDLES = {
    "albumentations": ("from sas_fast.integrations.albumentations import SAS", "A.Compose", "sample_id=3"),
    "torchvision": ("from sas_fast.integrations.torchvision import SAS", "v2.Compose", '"sample_id": 3'),
    "monai": ("from sas_fast.integrations.monai import RandSASd", "CacheDataset", "EpochSampler", "set_epoch"),
}
FRAMEWORK_OUTPUT = {  # what each block prints at its end: the values it computed, not just "no error"
    "albumentations": "sample 3: scale ",
    "torchvision": "; batch (8, 1, 256, 256)",
    "monai": "MetaTensor (8, 1, 256, 256): every sample augmented afresh in epoch 1",
}


def _framework_or_skip(name: str) -> None:
    """Skip, with the reason, where ``name`` does not import (torchvision beside a mismatched torch
    raises a RuntimeError on import, not an ImportError)."""
    try:
        __import__(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means: not usable here
        pytest.skip(f"{name} is not importable here ({type(exc).__name__}: {exc}); its README block needs it")


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_MARKERS))
def test_framework_snippet_runs_as_written(framework, tmp_path):
    _framework_or_skip(framework)
    code = readme_block(FRAMEWORK_MARKERS[framework])
    for needle in FRAMEWORK_NEEDLES[framework]:
        assert needle in code, f"README {framework} block lacks {needle!r}"
    stdout = _run_block(tmp_path, framework, code)
    assert FRAMEWORK_OUTPUT[framework] in stdout, stdout


# -- every other code block: each python block carries a marker and runs here

BLOCK_MARKER = "<!-- tests/test_readme.py runs the next code block as written: {} -->"
BLOCK_OUTPUT = {"usage": "augmented (16, 256, 256) uint8", "dask": "augmented (64, 128, 128) in 4 chunks",
                "gpu": "augmented on the GPU ndarray (16, 256, 256)"}  # fmt: skip


def test_every_python_block_of_the_readme_is_run_by_a_test():
    """No python block without a marker: a new snippet must be added to the ones run here."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.split("\n")
    untested = [i + 1 for i, line in enumerate(lines) if line == "```python" and not lines[i - 1].startswith(
        "<!-- tests/test_readme.py runs the next code block as written")]  # fmt: skip
    assert not untested, f"README.md: python blocks at lines {untested} are not run by tests/test_readme.py"


@pytest.mark.parametrize("name", sorted(BLOCK_OUTPUT))
def test_readme_block_runs_as_written(name, tmp_path):
    if name == "gpu":
        pytest.importorskip("cupy", reason="CuPy is not installed: the README's GPU block needs a CUDA machine")
        from sas_fast import backends

        try:
            backends.load("cupy")
        except backends.BackendUnavailable as exc:
            pytest.skip(str(exc))
    if name == "dask":
        pytest.importorskip("dask.array", reason="dask is not installed: the README's Dask block needs it")
    stdout = _run_block(tmp_path, name, readme_block(BLOCK_MARKER.format(name)))
    assert BLOCK_OUTPUT[name] in stdout, stdout


def test_readme_cli_block_runs_as_written(tmp_path):
    """The CLI block, as written, on a BUSI/ folder of two bundled samples (names as in BUSI)."""
    import cv2

    import sas_fast.data

    marker = "<!-- tests/test_readme.py runs the next code block as written (on a BUSI/ folder it makes): cli -->"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)\n```", text[text.index(marker) :], flags=re.S)[1]
    images, masks, _ = sas_fast.data.load_samples()
    for i in range(2):
        (tmp_path / "BUSI" / "benign").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(tmp_path / "BUSI" / "benign" / f"benign ({i}).png"), np.repeat(images[i][..., None], 3, 2))
        assert cv2.imwrite(str(tmp_path / "BUSI" / "benign" / f"benign ({i})_mask.png"), (masks[i] != 0).astype(np.uint8) * 255)
    cli = Path(sys.executable).with_name("sas-fast")
    script = block.replace("sas-fast ", f"{cli} " if cli.exists() else f"{sys.executable} -m sas_fast ")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "8 outputs regenerated, 0 differ" in result.stdout, result.stdout
    assert len(list((tmp_path / "out" / "images" / "benign").glob("*.png"))) == 8
