"""A kernel task's scorer: the launch script that runs it on a candidate in the sandbox, reading its verdict, and
the critic's price of one run (the parent's measured run plus a compile)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from crew.tools.cost import Estimate, Workload

__all__ = ["estimate_run", "read_score", "scorer_driver"]


def scorer_driver(candidate: str, scorer: str, args: Iterable[str] = ()) -> str:
    """The launch script: write the candidate into the work folder, then run the task's scorer on it there.

    The scorer is read from the task folder ($CREW_DATA, read-only inside the
    sandbox); the candidate never sees anything the scorer does not give it.
    """
    return (
        '"""crew kernel launch: write the candidate, run the task\'s scorer on it."""\n'
        "import os\nimport runpy\nimport sys\n\n"
        f"CANDIDATE = {candidate!r}\n"
        "with open('candidate.py', 'w', encoding='utf-8') as handle:\n"
        "    handle.write(CANDIDATE)\n"
        f"scorer = os.path.join(os.environ['CREW_DATA'], {scorer!r})\n"
        f"sys.argv = [scorer, 'candidate.py', *{list(args)!r}]\n"
        "sys.path.insert(0, os.getcwd())\n"
        "runpy.run_path(scorer, run_name='__main__')\n"
    )


def read_score(stdout: str) -> dict[str, Any] | None:
    """The scorer's JSON line (the last line of stdout that parses as a JSON object), or None."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


_COMPILE_SECONDS = 8.0
"""A candidate that compiles (Numba, torch) pays its compiler once more than the parent it rewrites."""
_PRIOR_MEMORY = 512 * 1024**2


def estimate_run(runs: list[tuple[float, int | None]], parent: tuple[float, int | None] | None, *,
                 experiment_time: float) -> Estimate:
    """The critic's estimate of one scorer run: the parent's measured run plus a compile, else the slowest seen.

    `runs` are (wall seconds, peak bytes) of the scorer runs that finished;
    with none yet (the start is the first), the estimate is half the
    experiment time, which is what the sandbox enforces anyway.
    """
    seen_memory = max((m for _, m in runs if m), default=None)
    if parent is not None:
        seconds, basis = parent[0] + _COMPILE_SECONDS, "the parent's scorer run plus a compile"
        memory = int(1.25 * (parent[1] or seen_memory or _PRIOR_MEMORY))
    elif runs:
        seconds, basis = max(s for s, _ in runs) + _COMPILE_SECONDS, "the slowest scorer run so far plus a compile"
        memory = int(1.25 * (seen_memory or _PRIOR_MEMORY))
    else:
        seconds, basis = 0.5 * experiment_time, "no scorer run yet: half the experiment time"
        memory = _PRIOR_MEMORY
    return Estimate(seconds=seconds, memory=memory, family="kernel", prior_seconds=seconds, prior_memory=memory,
                    basis=basis, workload=Workload(families=["kernel"]))
