"""Search strategies over the experiment tree: `Greedy` (AIDE) and `MCTS` (SELA-style UCT over insight paths).

A strategy reads the blackboard and the plan and says what to try next as
`Step`s (a parent and one insight); it never runs anything. Both are
deterministic for a seed, so the same seed gives the same experiments.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from crew import Blackboard, Experiment, best_first, oriented
from crew.tools.catalogue import FEATURES, IMPROVEMENTS, applies, debug_depth

__all__ = ["MCTS", "STRATEGIES", "Greedy", "Step", "Strategy", "family_leaders", "improvements_for",
           "opening_done"]

Phase = Literal["baseline", "draft", "improve", "debug", "speed"]
_FINISHED = ("done", "cached")


class Step(BaseModel):
    """What to try next: the phase, the parent to build on (None for a draft) and the one new insight."""

    phase: Phase
    parent: str | None = None
    model: str | None = None
    insight: str
    seed: int = 0
    expert: bool = False

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.parent, self.insight)


class Strategy(Protocol):
    def next_steps(self, board: Blackboard, plan: dict, n: int, *, higher_is_better: bool,
                   pending: Sequence[Step] = ()) -> list[Step]: ...


def improvements_for(plan: dict, experiment: Experiment) -> list[str]:
    """Insights that may still be added to `experiment`, and can change it: the plan's feature ideas first, then
    model-stage ones."""
    planned = [i for i in plan.get("search_space", {}).get("feature_engineering", []) if i in FEATURES]
    ordered = [*planned, *IMPROVEMENTS]
    used = set(experiment.insights)
    features = set(experiment.spec.get("features", []))
    model = experiment.spec.get("model")
    return [i for i in dict.fromkeys(ordered) if i not in used and i not in features and applies(i, model, plan)]


def _baseline_and_drafts(plan: dict) -> tuple[str, list[str]]:
    schedule = plan.get("schedule", [])
    baseline = next((s["insights"][0] for s in schedule if s["phase"] == "baseline" and s["insights"]), "linear")
    drafts: list[str] = next((s["insights"] for s in schedule if s["phase"] == "draft"), [])
    return baseline, [d for d in drafts if d != baseline]


def _opening(experiments: list[Experiment], plan: dict, n: int, taken: set[tuple[str | None, str]],
             seed: int, limit: int | None = None) -> list[Step]:
    """The baseline, then one draft per planned model family (the first `limit` of them when given)."""
    baseline, drafts = _baseline_and_drafts(plan)
    drafts = drafts if limit is None else drafts[:limit]
    roots = {e.spec.get("step") or e.insights[0] for e in experiments if e.parent is None and e.insights}
    steps: list[Step] = []
    for i, model in enumerate([baseline, *drafts]):
        if model not in roots and (None, model) not in taken and len(steps) < n:
            steps.append(Step(phase="baseline" if i == 0 else "draft", model=model, insight=model, seed=seed))
            taken.add((None, model))
    return steps


def opening_done(experiments: list[Experiment], plan: dict, *, max_drafts: int | None = None) -> bool:
    """Whether the baseline and every planned draft (the first `max_drafts`, when given) have been proposed."""
    return not _opening(experiments, plan, 1, set(), 0, max_drafts)


def _children(experiments: list[Experiment]) -> dict[str, list[Experiment]]:
    tree: dict[str, list[Experiment]] = {}
    for e in experiments:
        if e.parent:
            tree.setdefault(e.parent, []).append(e)
    return tree


def _tried(tree: dict[str, list[Experiment]], exp_id: str) -> set[str]:
    """Insights already added to `exp_id` (whatever became of them)."""
    return {c.insights[-1] for c in tree.get(exp_id, []) if c.insights}


def _debug_steps(experiments: list[Experiment], tree: dict[str, list[Experiment]], taken: set[tuple[str | None, str]],
                 *, probability: float, max_depth: int, seed: int) -> list[Step]:
    """AIDE's debugging, in a round drawn with `probability`: the newest failed leaf whose debug chain is shorter
    than `max_depth` goes back to the modeler with its error; a leaf whose chain is spent, and whose code was the
    brain's own, is replaced by the expert's experiment (`expert=True`) so the run still progresses."""
    if random.Random(seed * 7919 + len(experiments)).random() >= probability:
        return []
    by_id = {e.id: e for e in experiments}
    leaves = [e for e in experiments if e.status == "failed" and e.id not in tree and not e.spec.get("speed_of")]
    for leaf in reversed(leaves):  # a speed variant that changed the predictions is a dead end, not a bug
        if (leaf.id, "debug") in taken:
            continue
        depth = debug_depth(leaf, by_id)
        if depth < max_depth or (depth == max_depth and leaf.spec.get("own_code")):
            taken.add((leaf.id, "debug"))
            return [Step(phase="debug", parent=leaf.id, model=leaf.spec.get("model"), insight="debug", seed=seed,
                         expert=depth == max_depth)]
    return []


def _first_steps(experiments: list[Experiment], tree: dict[str, list[Experiment]], plan: dict, n: int,
                 taken: set[tuple[str | None, str]], search: Greedy | MCTS, *, max_drafts: int | None = None) -> list[Step]:
    """What comes before a strategy's own choice, for both: the opening, then a debug step when its roll says so."""
    steps = _opening(experiments, plan, n, taken, search.seed, max_drafts)
    if len(steps) < n:
        steps += _debug_steps(experiments, tree, taken, probability=search.debug_probability,
                              max_depth=search.max_debug_depth, seed=search.seed)
    return steps


def _tune_families(plan: dict) -> int:
    """How many model families the plan has tuned before the search narrows to the best (`tune_best_<k>`)."""
    words = {"one": 1, "two": 2, "three": 3, "four": 4}
    for step in plan.get("schedule", []):
        for insight in step.get("insights", []):
            if insight.startswith("tune_best_"):
                count = insight.removeprefix("tune_best_")
                return int(count) if count.isdigit() else words.get(count, 0)
    return 0


def family_leaders(ranked: Sequence[Experiment]) -> list[Experiment]:
    """The best experiment of each model family, in the order of `ranked` (best first)."""
    leaders: dict[Any, Experiment] = {}
    for exp in ranked:
        leaders.setdefault(exp.spec.get("model"), exp)
    return list(leaders.values())


def _tune_runners_up(ranked: list[Experiment], experiments: list[Experiment], plan: dict, n: int,
                     taken: set[tuple[str | None, str]], seed: int) -> list[Step]:
    """The plan's `tune_best_<k>`: the best experiment of each of the k best families is tuned once, so that the
    final ensemble has strong members that err differently, not only near-copies of one family's winner."""
    tuned = {e.spec.get("model") for e in experiments if "tune" in e.insights}
    steps: list[Step] = []
    for best in family_leaders(ranked)[:_tune_families(plan)]:
        family = best.spec.get("model")
        if len(steps) < n and family not in tuned and (best.id, "tune") not in taken and "tune" in improvements_for(plan, best):
            steps.append(Step(phase="improve", parent=best.id, model=family, insight="tune", seed=seed))
            taken.add((best.id, "tune"))
    return steps


class Greedy:
    """AIDE's policy: drafts first, then improve the best node; debug failed leaves with some probability. The
    plan's `tune_best_<k>` tunes the best of the k best families first (the first of them is the best node).

    `max_drafts` caps the drafts after the baseline (AIDE's `num_drafts`); None drafts every planned family.
    """

    def __init__(self, *, debug_probability: float = 0.5, max_debug_depth: int = 2, max_drafts: int | None = None,
                 seed: int = 0):
        self.max_drafts = max_drafts
        self.debug_probability = debug_probability
        self.max_debug_depth = max_debug_depth
        self.seed = seed

    def next_steps(self, board: Blackboard, plan: dict, n: int, *, higher_is_better: bool,
                   pending: Sequence[Step] = ()) -> list[Step]:
        taken = {s.key for s in pending}
        experiments = board.experiments()
        tree = _children(experiments)
        steps = _first_steps(experiments, tree, plan, n, taken, self, max_drafts=self.max_drafts)
        done = [e for e in experiments if e.status == "done" and e.score is not None]  # a cached copy is not expanded
        faster = {e.spec["speed_of"] for e in done if e.spec.get("speed_of")}
        done = [e for e in done if e.id not in faster]  # a kept speed variant is improved in its parent's place
        ranked = best_first(done, higher_is_better)
        steps += _tune_runners_up(ranked, experiments, plan, n - len(steps), taken, self.seed)
        for exp in ranked:
            if len(steps) >= n:
                break
            tried = _tried(tree, exp.id)
            for insight in improvements_for(plan, exp):
                if insight not in tried and (exp.id, insight) not in taken:
                    steps.append(Step(phase="improve", parent=exp.id, model=exp.spec.get("model"), insight=insight,
                                      seed=self.seed))
                    taken.add((exp.id, insight))
                    break
        return steps[:n]


class MCTS:
    """SELA's search: UCT over insight paths, scores normalised to [0, 1] by rank among finished experiments.

    The tree is the blackboard's: a node's value is the mean normalised
    score of its finished subtree, its visits the subtree's size. Selection
    descends by UCT from the root's drafts; a node with untried insights is
    expanded with the next one.
    """

    def __init__(self, *, exploration: float = 1.0, max_depth: int = 4, debug_probability: float = 0.5,
                 max_debug_depth: int = 2, seed: int = 0):
        self.exploration = exploration
        self.max_depth = max_depth
        self.debug_probability = debug_probability
        self.max_debug_depth = max_debug_depth
        self.seed = seed

    def next_steps(self, board: Blackboard, plan: dict, n: int, *, higher_is_better: bool,
                   pending: Sequence[Step] = ()) -> list[Step]:
        taken = {s.key for s in pending}
        experiments = board.experiments()
        tree = _children(experiments)
        steps = _first_steps(experiments, tree, plan, n, taken, self)
        done = sorted((e for e in experiments if e.status in _FINISHED and e.score is not None),
                      key=lambda e: oriented(e.score, higher_is_better))  # type: ignore[arg-type]
        reward = {e.id: (i + 1) / len(done) for i, e in enumerate(done)}

        def stats(exp: Experiment) -> tuple[float, int]:
            values, stack = [], [exp]
            while stack:
                node = stack.pop()
                values.append(reward.get(node.id, 0.0))
                stack.extend(tree.get(node.id, []))
            return sum(values) / len(values), len(values)

        roots = [e for e in experiments if e.parent is None and e.status == "done"]
        guard = 0
        while len(steps) < n and roots and guard < 4 * n:
            guard += 1
            total = sum(stats(r)[1] for r in roots)
            node = max(roots, key=lambda r: self._uct(stats(r), total))
            for depth in range(self.max_depth):
                tried = _tried(tree, node.id)
                untried = [i for i in improvements_for(plan, node) if i not in tried and (node.id, i) not in taken]
                if untried or depth == self.max_depth - 1:
                    break
                kids = [c for c in tree.get(node.id, []) if c.status == "done"]
                if not kids:
                    break
                visits = stats(node)[1]
                node = max(kids, key=lambda c: self._uct(stats(c), visits))
            if untried:
                steps.append(Step(phase="improve", parent=node.id, model=node.spec.get("model"), insight=untried[0],
                                  seed=self.seed))
                taken.add((node.id, untried[0]))
        return steps[:n]

    def _uct(self, stat: tuple[float, int], parent_visits: int) -> float:
        value, visits = stat
        return value + self.exploration * math.sqrt(math.log(max(parent_visits, 1) + 1) / visits)


STRATEGIES = {"greedy": Greedy, "mcts": MCTS}
