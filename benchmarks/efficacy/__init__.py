"""Efficacy study of SAS on simulated B-mode ultrasound (issue #14): does SAS help small structures?

``python -m benchmarks.efficacy [--quick]`` trains a small U-Net on large lesions only, with and
without SAS, and tests it on small ones; ``--report-only`` writes ``benchmarks/EFFICACY.md`` and the
plot from the results.  See ``benchmarks/efficacy/README.md``.  Needs the ``efficacy`` extra
(torch, matplotlib); importing this package imports neither.
"""
