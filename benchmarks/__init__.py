"""CPU throughput benchmarks of sas_fast against OpenCV, albumentations and scikit-image.

``python -m benchmarks.compare [--quick]`` prints the comparison table (see ``RESULTS.md``);
``bench_cpu.py`` runs the same contender registry under pytest-benchmark (and, with
``--benchmark-disable``, as a correctness smoke test on a small workload).
"""
