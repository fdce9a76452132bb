"""Watch the team work: every message between the roles, printed as it is posted, for a class or a first look.

    python examples/teaching_demo.py [TASK_YAML] [--explain] [--budget SECONDS] [--out DIR]

The roles talk only through the blackboard: each decision, each critic
verdict, each sandbox result and each review is a message there, with who
sent it, to whom, and why. This demo runs `crew solve` on a short budget
and prints those messages in order. `--explain` adds, the first time a role
speaks, what that role is for, and after each kind of message what it means
for the run, so a student can follow one experiment from idea to verdict.
"""


import argparse
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from crew import Blackboard, Message
from crew.roles.analyst import Analyst
from crew.roles.critic import Critic
from crew.roles.modeler import Modeler
from crew.roles.planner import Planner
from crew.roles.reviewer import Reviewer
from crew.roles.speed_optimizer import SpeedOptimizer
from crew.workflows.solve import solve

HERE = Path(__file__).resolve().parent
DEFAULT_TASK = HERE / "tasks" / "breast-cancer" / "task.yaml"

GOALS = {role.profile: role.goal for role in (Analyst, Planner, Modeler, Critic, Reviewer, SpeedOptimizer)}
GOALS["sandbox"] = ("Run each approved experiment as its own process with hard limits on time, memory and "
                    "processes, where the answers are unreadable, and report how it ended.")
GOALS["workflow"] = "The graph itself: it keeps a valid submission on disk and makes the final selection."

MEANING = {
    "analyst.decide": "The data report: which columns are numbers, categories, ids; what is missing or suspicious.",
    "planner.decide": "The plan: a quick baseline first, then one draft per model family, then improvements.",
    "modeler.decide": "An experiment design: the parent's pipeline plus exactly one new idea (an 'insight').",
    "critic.decide": "The critic priced the experiment before launch; a refusal never reaches the sandbox.",
    "sandbox.result": "The experiment ran (or was stopped at its limit); the reviewer reads its files next.",
    "reviewer.decide": "The verdict: only accepted experiments may become the answer; the CV is recomputed here.",
    "workflow.final": "Final selection: the best single model, a blend of the best, or a linear stack on their "
                      "out-of-fold predictions, whichever wins on rows its choice did not see.",
}


def _print(message: Message, start: float, *, explain: bool, seen_roles: set[str], seen_kinds: set[str]) -> None:
    if explain and message.sent_from not in seen_roles:
        seen_roles.add(message.sent_from)
        goal = GOALS.get(message.sent_from)
        if goal:
            print(f"\n== {message.sent_from} joins: {goal}")
    to = ", ".join(message.send_to)
    print(f"[{message.created_at - start:6.1f}s] {message.sent_from} -> {to} ({message.cause_by}): "
          + textwrap.shorten(message.content, 220))
    if explain and message.cause_by not in seen_kinds and message.cause_by in MEANING:
        seen_kinds.add(message.cause_by)
        print(f"         ^ {MEANING[message.cause_by]}")


def main(argv: list[str] | None = None) -> list[Message]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default=str(DEFAULT_TASK))
    parser.add_argument("--explain", action="store_true", help="say what each role is for and what each message means")
    parser.add_argument("--budget", type=float, default=45.0, help="wall time in seconds")
    parser.add_argument("--max-experiments", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="crew-teach-"))
    board_path = run_dir / "blackboard.sqlite"
    printed: list[Message] = []
    seen_roles: set[str] = set()
    seen_kinds: set[str] = set()
    start: list[float] = []

    def show_new(*_: Any) -> None:
        """Called after every step of the graph: print the messages posted since the last call."""
        if not board_path.exists():
            return
        for message in Blackboard(board_path).messages()[len(printed):]:
            if not start:
                start.append(message.created_at)
            _print(message, start[0], explain=args.explain, seen_roles=seen_roles, seen_kinds=seen_kinds)
            printed.append(message)

    summary = solve(args.task, out=run_dir, wall_time=args.budget, workers=1, max_experiments=args.max_experiments,
                    on_event=show_new)
    show_new()
    print(f"\n{len(printed)} messages; submission: {summary['submission']}")
    return printed


if __name__ == "__main__":
    main()
