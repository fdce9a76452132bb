"""Hand-written prefix-sum kernel, two passes on all cores: per-chunk parity and sums, then each chunk from its start.

Pass one computes, for every chunk and both possible parities at its start,
the chunk's sum and its parity at the end; a short serial pass gives each
chunk its true starting parity and total; pass two writes every chunk in
parallel. Kept in bench/ as the yardstick for the kernel optimizer.
"""

import numba
import numpy as np


@numba.njit(parallel=True, boundscheck=False, nogil=True, error_model="numpy")
def _scan(x, out, chunks):
    n = x.shape[0]
    size = (n + chunks - 1) // chunks
    flips = np.zeros(chunks, np.int64)
    sum_even = np.zeros(chunks, np.int64)  # the chunk's sum if the parity before it is even
    sum_odd = np.zeros(chunks, np.int64)  # ... and if it is odd
    for c in numba.prange(chunks):
        odd = 0
        even_total = 0
        odd_total = 0
        for i in range(c * size, min(n, (c + 1) * size)):
            value = x[i]
            even_total += value * odd
            odd_total += value * (1 - odd)
            odd ^= value > 0
        flips[c] = odd
        sum_even[c] = even_total
        sum_odd[c] = odd_total
    start_odd = np.zeros(chunks, np.int64)
    start_total = np.zeros(chunks, np.int64)
    odd = 0
    total = 0
    for c in range(chunks):
        start_odd[c] = odd
        start_total[c] = total
        total += sum_odd[c] if odd else sum_even[c]
        odd ^= flips[c]
    for c in numba.prange(chunks):
        odd = start_odd[c]
        total = start_total[c]
        for i in range(c * size, min(n, (c + 1) * size)):
            value = x[i]
            total += value * odd
            out[i] = total
            odd ^= value > 0
    return out


def prefix_sum(x: np.ndarray) -> np.ndarray:
    return _scan(x, np.empty(x.shape[0], dtype=np.int64), 8 * numba.get_num_threads())
