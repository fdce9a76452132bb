"""The starting solution: correct, and slow on purpose (one Python-level step per element)."""

import numpy as np


def prefix_sum(x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x), dtype=np.int64)
    total = 0
    positives = 0
    for i, value in enumerate(x.tolist()):
        if positives % 2:
            total += value
        out[i] = total
        if value > 0:
            positives += 1
    return out
