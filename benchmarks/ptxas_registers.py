"""Registers and spills of the CUDA kernels as CuPy would compile them, without a GPU.

``python -m benchmarks.ptxas_registers [--arch sm_90]`` compiles W's kernels (rescale_paste,
Poisson-free augment, augment with Poisson; uint8 and float32 images, uint8 masks) with NVRTC at
every launch setting of ``benchmarks.bench_gpu.SWEEP`` and prints ptxas' registers per thread and
bytes of spill stores as a Markdown table (the GPU section of benchmarks/RESULTS.md).  Needs
libnvrtc (``pip install nvidia-cuda-nvrtc``), no GPU.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from benchmarks.bench_gpu import SWEEP
from sas_fast.backends import cuda
from tests.cuda_host import nvrtc

#: (kernel, image dtype, poisson) columns of the table; masks are uint8.
COLUMNS = [
    ("rescale_paste", np.uint8, False), ("augment", np.uint8, False), ("augment", np.uint8, True),
    ("rescale_paste", np.float32, False), ("augment", np.float32, False), ("augment", np.float32, True),
]  # fmt: skip


def registers(path: str, arch: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """``{name expression: (registers, spill store bytes)}`` from ptxas' report."""
    _, lowered, log = nvrtc.compile_kernels(path, f"-arch={arch}", names)
    by_entry = {entry: name for name, entry in lowered.items()}
    pattern = rf"Compiling entry function '(\w+)' for '{arch}'\n.*?Function properties for \1\n.*?(\d+) bytes spill stores.*?Used (\d+) registers"
    # the module also holds kernels not asked for by name (sas_area_taps): report only the asked ones
    return {by_entry[m[1]]: (int(m[3]), int(m[2])) for m in re.finditer(pattern, log, re.S) if m[1] in by_entry}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_90")
    args = parser.parse_args(argv)
    path = nvrtc.library_path()
    if path is None:
        print("libnvrtc not found: pip install nvidia-cuda-nvrtc", file=sys.stderr)
        return 2
    names = [cuda.name_expression(f, dtype, np.uint8, poisson) for f, dtype, poisson in COLUMNS]
    heads = [f"{f}{'+P' if p else ''} {'u8' if d == np.uint8 else 'f32'}" for f, d, p in COLUMNS]
    print("| RUN_BYTES / BLOCK_THREADS / MIN_BLOCKS | " + " | ".join(heads) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    saved = cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS
    try:
        for knobs in SWEEP:
            cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS = knobs
            found = registers(path, args.arch, names)
            cells = [f"{found[n][0]} ({found[n][1]})" for n in names]
            print(f"| {' / '.join(map(str, knobs))} | " + " | ".join(cells) + " |", flush=True)
    finally:
        cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
