"""Tokens per experiment: how lean the chat models' context is, measured on a real `crew solve`.

    python bench/llm_tokens.py [--task ../shared/tasks/cars-mpg] [--budget 2m] [--out DIR]

Every role thinks through a ChatBrain whose chat model answers with the
expert policy's own decision (so the run goes exactly as offline, and the
answers have a realistic size), while the prompts are the real ones, built
from the real contexts. Tokens are counted as ScriptedChatModel reports them
(four characters a token, as the usage records estimate them). Prints, per
role, the calls, the mean prompt and answer tokens, and the total, then the
tokens per experiment run.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crew import Blackboard, ChatBrain
from crew._brain import ROLES
from crew._units import parse_duration
from crew.testing import ScriptedChatModel
from crew.workflows.solve import solve

REPO = Path(__file__).resolve().parents[1]


class ExpertEcho(ChatBrain):
    """A ChatBrain whose model replies with what the role's expert would decide for the same context."""

    def __init__(self) -> None:
        self.reply = ""
        super().__init__(ScriptedChatModel(answers=[lambda _messages: self.reply] * 100_000),
                         prices={"scripted": (0.0, 0.0)})

    def decide(self, role: Any, context: Mapping[str, Any], *, blackboard: Any = None) -> Any:
        self.reply = role.expert(context).model_dump_json()
        return super().decide(role, context, blackboard=blackboard)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, default=REPO.parent / "shared" / "tasks" / "cars-mpg")
    parser.add_argument("--budget", default="2m")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="crew-tokens-")) / "run"
    brain = ExpertEcho()
    solve(args.task, out=out, brain=dict.fromkeys(ROLES, brain), wall_time=parse_duration(args.budget))
    board = Blackboard(out / "blackboard.sqlite")
    ran = [e for e in board.experiments() if e.wall_time and e.status != "cached"]
    print(f"task {args.task.name}, budget {args.budget}: {len(board.experiments())} experiments proposed, {len(ran)} run")
    print("| role | calls | mean prompt tokens | mean answer tokens | total tokens |")
    print("| --- | ---: | ---: | ---: | ---: |")
    total = 0
    for role in ROLES:
        usage = board.llm_usage(role=role)
        if not usage:
            continue
        tokens = sum(u.input_tokens + u.output_tokens for u in usage)
        total += tokens
        print(f"| {role} | {len(usage)} | {sum(u.input_tokens for u in usage) / len(usage):.0f} "
              f"| {sum(u.output_tokens for u in usage) / len(usage):.0f} | {tokens} |")
    proposed = len(board.experiments())
    print(f"\ntokens per experiment proposed: {total / max(1, proposed):.0f}; per experiment run: {total / max(1, len(ran)):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
