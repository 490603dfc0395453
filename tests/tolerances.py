"""Tolerances per dtype, in one place (units: the image's own values).

Between sas_fast backends the spec makes geometry exact and speckle/gaussian noise bit-identical,
so those comparisons use equality.  Only comparisons against outside anchors need slack.
"""

import numpy as np

#: |sas_fast - cv2.resize(INTER_LINEAR)|, per image dtype: float32 within 1e-4 of the value range
#: (SPEC §2); OpenCV's integer resize is fixed point (weights rounded to 1/2048), so within 1.
OPENCV_LINEAR = {np.dtype(np.float32): 1e-4, np.dtype(np.uint8): 1, np.dtype(np.uint16): 1}

#: Fraction of pixels on which the nearest-exact mask may differ from cv2.INTER_NEAREST_EXACT
#: (near-ties where OpenCV's IPP path rounds differently; SPEC §2 "rare one-pixel shifts").
OPENCV_NEAREST_MISMATCH = 0.02

#: Poisson counts may differ by one between backends where float64 libm exp/log round differently
#: (SPEC §4); the largest fraction of in-mask pixels allowed to differ, and by at most this much.
POISSON_MISMATCH_FRACTION = 1e-4
POISSON_MISMATCH_COUNTS = 1

#: Benchmark baselines that draw their own random numbers (benchmarks/baselines.py): the in-mask
#: noise standard deviation of a baseline may differ from the reference's by at most this factor
#: either way (same distribution, different draws and rounding).
NOISE_STRENGTH_RATIO = 1.1

#: |baseline - reference| of the pasted image for outside resizers (OpenCV, scikit-image) on the
#: benchmark workloads, per dtype.  uint16 needs more than OPENCV_LINEAR: the spec's float32
#: ratio moves a tap by up to ~3e-5 pixel, which is a few levels between full-range random uint16
#: neighbours (3 seen); 7 is 1e-4 of the range, as for float32.
BASELINE_GEOMETRY = {np.dtype(np.float32): 1e-4, np.dtype(np.uint8): 1, np.dtype(np.uint16): 7}
