"""The GPU tests (``-m gpu``), run in CI against the CuPy stand-in of tests/cuda_host/cupy_standin.py.

The stand-in's "device arrays" are NumPy arrays that carry ``__cuda_array_interface__`` and its
kernels are the unchanged ``.cu`` file compiled for the CPU, so this checks everything sas_fast
does around a GPU launch: dispatch to the CUDA backend, array conversions, ``out=`` buffers across
devices, launch arguments, module memoisation.  It cannot check real CuPy, NVRTC on a device or
the GPU's arithmetic: the GPU run of ``benchmarks/gpu_check.sh`` does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cuda_host import host_backend

ROOT = Path(__file__).resolve().parent.parent
#: Tests the stand-in skips, saying why: the 2^31-pixel batch (minutes on the host kernels) and
#: CUDA torch tensors (torch has no CUDA here).
STANDIN_SKIPS = 2


def test_the_gpu_tests_pass_on_the_cupy_standin():
    if host_backend.compiler() is None:
        pytest.skip("g++ is not installed: the stand-in has no kernels to run")
    env = dict(os.environ, SAS_FAST_CUPY_STANDIN="1")
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    skipped = re.search(r"(\d+) skipped", summary)
    assert passed >= 150, summary  # test_cuda_gpu.py and the cupy case of every backend-parametrised test
    assert (int(skipped.group(1)) if skipped else 0) <= STANDIN_SKIPS, summary
