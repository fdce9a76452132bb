"""`Budget`: what a run may spend (wall time, experiments, LLM money) and what one experiment may hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from crew._task import Task
from crew.errors import CrewError

__all__ = ["Budget", "BudgetExceeded", "Remaining"]

Resource = Literal["wall_time", "experiments", "llm_spend"]


class BudgetExceeded(CrewError):
    """A resource of the run is spent; workflows catch it to stop gracefully and write what they have."""

    def __init__(self, resource: Resource, detail: str):
        self.resource = resource
        super().__init__(f"budget exceeded: {resource} ({detail})")


@dataclass(frozen=True)
class Remaining:
    """A snapshot of what is left; per-experiment caps (time, memory, GPUs) are repeated for the critic."""

    wall_time: float
    experiments: int
    llm_spend: float | None
    experiment_time: float
    memory: int
    gpus: int


class Budget:
    """The run's budget: cumulative resources are charged, per-experiment caps are limits.

    Thread-safe, because a pool of experiment runners charges it concurrently.
    The clock is injectable so that budget logic can be tested without sleeping.
    """

    def __init__(
        self,
        *,
        wall_time: float = 600.0,
        experiment_time: float = 120.0,
        memory: int = 4 * 1024**3,
        gpus: int = 0,
        max_experiments: int = 50,
        llm_spend: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.wall_time = wall_time
        self.experiment_time = experiment_time
        self.memory = memory
        self.gpus = gpus
        self.max_experiments = max_experiments
        self.llm_spend = llm_spend
        self.clock = clock
        self._started = clock()
        self._experiments = 0
        self._spent = 0.0
        self._tokens = 0
        self._lock = threading.Lock()

    @classmethod
    def from_task(cls, task: Task, *, llm_spend: float | None = None, clock: Callable[[], float] = time.monotonic) -> Budget:
        b = task.budget
        return cls(wall_time=b.wall_time, experiment_time=b.experiment_time, memory=b.memory, gpus=b.gpus,
                   max_experiments=b.max_experiments, llm_spend=llm_spend, clock=clock)

    # -- reading ----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.clock() - self._started

    def remaining(self) -> Remaining:
        with self._lock:
            return Remaining(
                wall_time=max(0.0, self.wall_time - self.elapsed()),
                experiments=max(0, self.max_experiments - self._experiments),
                llm_spend=None if self.llm_spend is None else max(0.0, self.llm_spend - self._spent),
                experiment_time=self.experiment_time,
                memory=self.memory,
                gpus=self.gpus,
            )

    @property
    def spent(self) -> dict[str, float]:
        with self._lock:
            return {"wall_time": self.elapsed(), "experiments": self._experiments, "llm_spend": self._spent,
                    "llm_tokens": self._tokens}

    def exhausted(self) -> Resource | None:
        """The first cumulative resource that is spent, or None while the run may go on."""
        left = self.remaining()
        if left.wall_time <= 0:
            return "wall_time"
        if left.experiments <= 0:
            return "experiments"
        return None

    def llm_allowed(self) -> bool:
        """Whether another LLM call may be made; without a money budget, always."""
        left = self.remaining().llm_spend
        return left is None or left > 0

    # -- spending ---------------------------------------------------------------------------

    def check(self, seconds: float = 0.0) -> None:
        """Raise BudgetExceeded unless the run can start something that needs `seconds` of wall time."""
        resource = self.exhausted()
        if resource == "wall_time" or (seconds and self.remaining().wall_time < seconds):
            raise BudgetExceeded("wall_time", f"{self.elapsed():.1f}s of {self.wall_time:.0f}s used, {seconds:.1f}s needed")
        if resource == "experiments":
            raise BudgetExceeded("experiments", f"{self._experiments} of {self.max_experiments} launched")

    def charge(self, *, experiments: int = 0, llm_cost: float = 0.0, llm_tokens: int = 0) -> Remaining:
        """Record what was spent; spending is recorded even when it crosses a limit (it happened)."""
        if experiments < 0 or llm_cost < 0 or llm_tokens < 0:
            raise ValueError("charges are never negative")
        with self._lock:
            self._experiments += experiments
            self._spent += llm_cost
            self._tokens += llm_tokens
        return self.remaining()

    def check_llm(self) -> None:
        if not self.llm_allowed():
            raise BudgetExceeded("llm_spend", f"${self._spent:.4f} of ${self.llm_spend:.4f} spent")
