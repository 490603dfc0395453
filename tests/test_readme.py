"""The README's PyTorch Dataset recipe runs as written: two epochs with persistent DataLoader
workers, and epoch 1 augments every sample afresh (the snippet asserts it itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    script = tmp_path / "readme_dataset.py"  # a file, so spawn-start workers can re-import it
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the README snippet did not finish in {exc.timeout} s:\n{exc.stderr or ''}")
    assert result.returncode == 0, f"the README snippet failed:\n{result.stdout}\n{result.stderr}"
    assert "every sample augmented afresh in epoch 1" in result.stdout, result.stdout
