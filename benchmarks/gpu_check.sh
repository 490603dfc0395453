#!/usr/bin/env bash
# Everything a session with a lent GPU should run, in ONE call (expected 3-4 minutes, at most 8):
#   1. the GPU tests (-m gpu: tests/test_cuda_gpu.py and every backend-parametrised test's cupy case,
#      CUDA vs the NumPy reference through the public API);
#   2. the GPU benchmarks (benchmarks/bench_gpu.py, with the launch-settings sweep);
#   3. a short table last: per configuration, sas_fast's time, MPix/s, % of the copy ceiling and
#      how many times slower torch / cupyx are.
# Usage, from anywhere:  bash benchmarks/gpu_check.sh
# Logs and the benchmark JSON go to $OUT (the device tool's folder) or /tmp/sas_gpu_check.
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT:-/tmp/sas_gpu_check}"
mkdir -p "$out_dir"
export PYTHONPATH=. PYTHONUNBUFFERED=1
start=$(date +%s)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"

# pytest-xdist (in the GPU image) spreads the first compiles of the kernel instances over 4 processes
workers=""; python3 -c "import xdist" 2>/dev/null && workers="-n 4"
timeout 240 python3 -m pytest -m gpu tests -q -p no:cacheprovider --maxfail=30 $workers 2>&1 | tee "$out_dir/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}

timeout 240 python3 -m benchmarks.bench_gpu --sweep --json "$out_dir/bench_gpu.json" 2>&1 | tee "$out_dir/bench_gpu.log"
bench_rc=${PIPESTATUS[0]}

python3 - "$out_dir/bench_gpu.json" <<'EOF' || echo "(no benchmark JSON)"
import json, sys
data = json.load(open(sys.argv[1]))
rows = data["rows"]
print(f"\n== summary on {data['card']} (sas_fast == reference: {data['exact']}) ==")
print(f"{'config':<20} {'sas_fast ms':>11} {'MPix/s':>8} {'% ceiling':>9} {'kernel ms':>9} {'torch x':>8} {'cupyx x*':>8}")
for config in dict.fromkeys(r["config"] for r in rows if not r["contender"].startswith("kernel RUN")):
    by = {r["contender"]: r for r in rows if r["config"] == config}
    sas = by.get("sas_fast")
    if sas is None:
        continue
    ratio = lambda k: f"{by[k]['ratio_to_sas']:.1f}" if k in by else "-"
    kernel = f"{by['sas_fast-kernel']['median_ms']:.2f}" if "sas_fast-kernel" in by else "-"
    print(f"{config:<20} {sas['median_ms']:>11.2f} {sas['mpix_s']:>8.0f} {sas['pct_ceiling']:>8.0f}% {kernel:>9} {ratio('torch'):>8} {ratio('cupyx'):>8}")
print("* cupyx timed on its first images and scaled (one NVRTC compile per new output shape); warm-up ms per row in bench_gpu.log")
sweep = [r for r in rows if r["contender"].startswith("kernel RUN")]
for r in sweep:  # "kernel RUN_BYTES=8 BLOCK_THREADS=256 MIN_BLOCKS=1"
    knobs = " ".join(r["contender"].split()[1:])
    print(f"sweep {r['config'].split()[-1]:<8} {knobs:<44} {r['median_ms']:>7.2f} ms  {r['note']}")
EOF
echo "gpu tests rc=$tests_rc  benchmarks rc=$bench_rc  total $(( $(date +%s) - start )) s  (logs: $out_dir)"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
