"""Hand-written prefix-sum kernel, one pass: Numba loop, branch-free parity flag, NumPy-allocated output.

Kept in bench/ as the yardstick for the kernel optimizer; the sandbox hides
this folder from every candidate the optimizer runs.
"""

import numba
import numpy as np


@numba.njit(boundscheck=False, nogil=True, error_model="numpy")
def _scan(x, out):
    total = 0
    odd = 0
    for i in range(x.shape[0]):
        value = x[i]
        total += value * odd
        out[i] = total
        odd ^= value > 0
    return out


def prefix_sum(x: np.ndarray) -> np.ndarray:
    return _scan(x, np.empty(x.shape[0], dtype=np.int64))
