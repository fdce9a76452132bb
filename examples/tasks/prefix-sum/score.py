"""Score a prefix-sum candidate: exact equality with the reference computation, then -ln(ms) of its best run.

    python score.py CANDIDATE.py [--n 10000000] [--repeats 5] [--seed 0]

Prints one JSON line: {"valid", "time_s", "log_ms", "score", "n", "error"}.
`valid` is false when any call's output differs from the reference (or the
candidate raises); `score` is then null. The first call is a warm-up (JIT
compilers compile there) and is checked but not timed; every call gets a
fresh copy of the input, so nothing a candidate does to its argument or
remembers between calls can pass for speed.
"""

import argparse
import importlib.util
import json
import math
import sys
import time
import traceback

import numpy as np


def make_input(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-100, 101, size=n, dtype=np.int32)


def reference(x: np.ndarray) -> np.ndarray:
    values = x.astype(np.int64)
    positive = (values > 0).astype(np.int64)
    before = np.cumsum(positive) - positive  # positives among x_0 .. x_{j-1}
    return np.cumsum(values * (before % 2))


def _same(out: object, expected: np.ndarray) -> bool:
    try:
        got = np.asarray(out)
    except Exception:
        return False
    return got.shape == expected.shape and got.dtype.kind in "iu" and bool(np.array_equal(got.astype(np.int64), expected))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate")
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = {"valid": False, "time_s": None, "log_ms": None, "score": None, "n": args.n, "error": None}
    try:
        spec = importlib.util.spec_from_file_location("candidate", args.candidate)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        x = make_input(args.n, args.seed)
        expected = reference(x)
        small = make_input(1000, args.seed + 1)
        if not _same(module.prefix_sum(small.copy()), reference(small)):
            raise ValueError("wrong output on a 1,000-element input")
        if not _same(module.prefix_sum(x.copy()), expected):
            raise ValueError(f"wrong output on the {args.n:,}-element input")
        times = []
        for _ in range(args.repeats):
            data = x.copy()
            start = time.perf_counter()
            out = module.prefix_sum(data)
            times.append(time.perf_counter() - start)
            if not _same(out, expected):
                raise ValueError("wrong output on a timed call")
        best = min(times)
        ms = max(best * 1000.0, 1e-6)
        result.update(valid=True, time_s=best, log_ms=math.log(ms), score=-math.log(ms))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
