"""scikit-learn's own `check_estimator` on `crew.CrewClassifier` and `crew.CrewRegressor`, each check's verdict and time.

    python bench/check_estimators.py [--budget 30s] [--experiments 2] [--only CrewClassifier] [--out FILE]

Every check that fits runs a whole solve on the check's small data: at most
`--experiments` experiments (default 2: the linear baseline and LightGBM)
within `--budget`, a budget with room to spare so that two fits of the same
data give the same model, as the checks that compare fits ask; on a busy
machine a fit capped by time alone may finish different experiments. Prints
one line per check (seconds, status, name, the failure's first words) and
a summary; `--out` writes every record as JSON. Exits 1 when a check fails:
no check is excluded (`expected_failed_checks` is empty), and the only
skip is scikit-learn's array-API check, which needs `SCIPY_ARRAY_API=1`
and array-API inputs crew does not take.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def run_checks(estimator: Any, *, echo: bool = True) -> list[dict[str, Any]]:
    """Run every check `check_estimator` yields for `estimator` without stopping at a failure; one record each."""
    from sklearn.utils.estimator_checks import check_estimator

    records: list[dict[str, Any]] = []
    last = [time.perf_counter()]

    def record(*, check_name: str, status: str, exception: BaseException | None = None, **_: Any) -> None:
        now = time.perf_counter()
        records.append({"estimator": type(estimator).__name__, "check": check_name, "status": status,
                        "seconds": round(now - last[0], 2),
                        "error": "" if exception is None else str(exception).strip().splitlines()[0][:300]})
        last[0] = now
        if echo:
            print(f"{records[-1]['seconds']:6.1f}s {status:7s} {check_name} {records[-1]['error']}", flush=True)

    check_estimator(estimator, on_fail=None, on_skip=None, callback=record)
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="30s", help="each fit's time_budget (default 30s)")
    parser.add_argument("--experiments", type=int, default=2, help="each fit's max_experiments (default 2)")
    parser.add_argument("--only", choices=["CrewClassifier", "CrewRegressor"], help="check one estimator")
    parser.add_argument("--out", type=Path, help="write every check's record here as JSON")
    args = parser.parse_args(argv)
    import crew

    records: list[dict[str, Any]] = []
    for name in [args.only] if args.only else ["CrewClassifier", "CrewRegressor"]:
        start = time.perf_counter()
        mine = run_checks(getattr(crew, name)(time_budget=args.budget, max_experiments=args.experiments))
        counts = {s: sum(r["status"] == s for r in mine) for s in ("passed", "failed", "skipped")}
        print(f"{name}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
              f"in {time.perf_counter() - start:.0f} s", flush=True)
        records += mine
    if args.out:
        args.out.write_text(json.dumps({"budget": args.budget, "max_experiments": args.experiments,
                                        "checks": records}, indent=1), encoding="utf-8")
    return records


if __name__ == "__main__":
    sys.exit(1 if any(r["status"] == "failed" for r in main()) else 0)
