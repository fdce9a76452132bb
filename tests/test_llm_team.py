"""LLM-driven roles: a scripted chat model thinks for the modeler in a real `crew solve`, through every failure mode."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crew import Blackboard, ChatBrain, CrewError, ExpertBrain, Task, grade
from crew._brain import ROLES, team_brains
from crew.testing import ScriptedChatModel, ScriptedChatServer
from crew.workflows.solve import solve
from crew.workflows.strategies import Greedy
from tests.conftest import EXAMPLE_ANSWERS, EXAMPLE_TASK

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier

# What a chat model writes when it follows the modeler's contract for the example task (binary, roc_auc).
GOOD = '''import json
import os

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

root = os.environ["CREW_DATA"]
train = pd.read_csv(os.path.join(root, "data/train.csv"))
test = pd.read_csv(os.path.join(root, "data/test.csv"))
features = [c for c in train.columns if c not in ("id", "malignant")]
y = train["malignant"].to_numpy()
oof, test_pred, folds, fits = np.zeros(len(train)), np.zeros(len(test)), [], []
for fit_idx, valid_idx in StratifiedKFold(5, shuffle=True, random_state=0).split(train, y):
    model = HistGradientBoostingClassifier(max_iter=120, learning_rate=0.08, random_state=0)
    model.fit(train.loc[fit_idx, features], y[fit_idx])
    oof[valid_idx] = model.predict_proba(train.loc[valid_idx, features])[:, 1]
    test_pred += model.predict_proba(test[features])[:, 1] / 5
    folds.append(float(roc_auc_score(y[valid_idx], oof[valid_idx])))
    fits.append(float(roc_auc_score(y[fit_idx], model.predict_proba(train.loc[fit_idx, features])[:, 1])))
for name, frame in (("oof.csv", train), ("test_pred.csv", test), ("predictions.csv", test)):
    values = oof if name == "oof.csv" else test_pred
    pd.DataFrame({"id": frame["id"], "malignant": values}).to_csv(name, index=False)
with open("metrics.json", "w") as handle:
    json.dump({"metric": "roc_auc", "cv": float(roc_auc_score(y, oof)), "cv_std": float(np.std(folds)),
               "folds": folds, "train_score": float(np.mean(fits))}, handle)
'''
CRASH = GOOD.replace('y = train["malignant"]', 'y = train["malignnt"]')
CRASH_AGAIN = GOOD.replace('y = train["malignant"]', 'y = train["is_malignant"]')
CHEAT = GOOD.replace('test_pred += model', 'test_pred += 0 * model') + '''
answers = pd.read_csv(os.path.join(root, "..", "..", "answers", "breast-cancer", "answers.csv"))
answers.to_csv("predictions.csv", index=False)
'''


def design(insight: str, code: str | None = None, model: str = "hist_gradient_boosting", **fields) -> str:
    return json.dumps({"rationale": f"scripted: {insight}", "model": model, "insight": insight, "code": code, **fields})


class ScriptedModeler:
    """The chat model's side of the conversation, by call: two bad answers, own code, a crash, a cheat; then it
    debugs with another crash, and otherwise asks the catalogue for LightGBM on a new seed."""

    def __init__(self) -> None:
        self.calls = 0
        self.debug_prompts: list[str] = []

    def __call__(self, messages) -> str:
        n, self.calls = self.calls, self.calls + 1
        prompt = str(messages[1].content)
        scripted = {0: "I would try gradient boosting first.",  # no JSON at all
                    1: '{"model": "hist_gradient_boosting", "folds": 1}',  # wrong schema
                    2: design("own hgb", GOOD), 3: design("own hgb, typo", CRASH), 4: design("peek", CHEAT)}
        if n in scripted:
            return scripted[n]
        if '"phase":"debug"' in prompt:
            self.debug_prompts.append(prompt)
            return design("debug", CRASH_AGAIN)
        return design("lightgbm", model="lightgbm", seed=n)


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("llm") / "run"
    modeler = ScriptedModeler()
    chat = ScriptedChatModel(answers=[modeler] * 200)
    brain = {"modeler": ChatBrain(chat, max_retries=2, prices={"scripted": (1.0, 2.0)})}
    summary = solve(EXAMPLE_TASK / "task.yaml", out=out, brain=brain, strategy=Greedy(debug_probability=1.0,
                    max_debug_depth=1, max_drafts=3), workers=1, wall_time=150, max_experiments=8, seed=0)
    return summary, Blackboard(out / "blackboard.sqlite"), modeler


def test_malformed_answers_are_retried_with_their_error_then_decided(scripted_run):
    _, board, _ = scripted_run
    retries = [m for m in board.messages(kind="brain.retry") if m.sent_from == "modeler"]
    assert len(retries) == 2
    assert "no JSON object" in retries[0].payload["error"]
    assert "insight" in retries[1].payload["error"] and "folds" in retries[1].payload["error"]


def test_the_chat_models_own_code_runs_and_scores(scripted_run):
    _, board, _ = scripted_run
    own = [e for e in board.experiments() if e.spec.get("own_code") and e.code == GOOD]
    assert len(own) == 1 and own[0].status == "done"
    assert own[0].score is not None and own[0].score > 0.95  # breast cancer AUC, recomputed by the reviewer


def test_crashing_code_goes_back_with_its_traceback_then_to_the_expert(scripted_run):
    _, board, modeler = scripted_run
    experiments = board.experiments()
    [crash] = [e for e in experiments if e.code == CRASH]
    assert crash.status == "failed" and "KeyError" in crash.error and "malignnt" in crash.error
    assert modeler.debug_prompts and "malignnt" in modeler.debug_prompts[0]  # the trimmed traceback, in the prompt
    [again] = [e for e in experiments if e.code == CRASH_AGAIN and e.parent == crash.id]
    assert again.parent == crash.id and again.insights[-1] == "debug" and again.status == "failed"
    [replacement] = [e for e in experiments if e.parent == again.id]
    assert replacement.insights[-1] == "debug" and not replacement.spec.get("own_code")
    assert replacement.status == "done" and replacement.score is not None
    handed = [m for m in board.messages(kind="brain.fallback") if m.payload.get("reason") == "debug_depth"]
    assert [m.payload["parent"] for m in handed] == [again.id]


def test_cheating_code_is_stopped_by_the_critic(scripted_run):
    _, board, _ = scripted_run
    [cheat] = [e for e in board.experiments() if e.code == CHEAT]
    assert cheat.status == "rejected" and "answers" in cheat.error
    assert any(m.payload.get("rule") == "answers" for m in board.messages(kind="critic.finding"))


def test_the_run_ends_with_a_graded_submission_and_recorded_usage(scripted_run):
    summary, board, modeler = scripted_run
    report = grade(Task.load(EXAMPLE_TASK / "task.yaml"), summary["submission"], EXAMPLE_ANSWERS)
    assert report.valid_submission and report.score > 0.95
    usage = board.llm_usage(role="modeler")
    assert len(usage) == modeler.calls and all(u.ok for u in usage)
    assert all(u.input_tokens > 0 and u.cost > 0 for u in usage)
    assert not board.llm_usage(role="reviewer")  # a mixed team: the others are offline


def test_team_brains_reads_mixed_teams():
    team = team_brains("openai:gpt-4o", "reviewer=offline", "modeler=ollama:llama3.1")
    assert set(team) == set(ROLES)
    assert isinstance(team["reviewer"], ExpertBrain)
    assert team["planner"] is team["critic"] and team["planner"].model == "openai:gpt-4o"  # one brain, one budget
    assert team["modeler"].model == "ollama:llama3.1"
    mapping = team_brains({"default": "offline", "modeler": "http://127.0.0.1:9/v1#m"})
    assert isinstance(mapping["planner"], ExpertBrain) and isinstance(mapping["modeler"], ChatBrain)
    assert all(isinstance(b, ExpertBrain) for b in team_brains(None).values())
    with pytest.raises(CrewError, match="unknown role 'modeller'"):
        team_brains("modeller=openai:gpt-4o")
    with pytest.raises(CrewError, match="provider:model"):
        team_brains("modeler=gpt-4o")


def test_solve_through_langchain_openai_against_a_loopback_server(tmp_path, monkeypatch, cli):
    """Real HTTP: the CLI's `--llm modeler=URL#gpt-4o-mini` drives the modeler; tokens and dollars are recorded.

    60s: the chat model's own script is also run a second time by the label probe before the fourth call."""
    pytest.importorskip("langchain_openai")
    for var in ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    seen: list[str] = []

    def respond(body: dict) -> str:
        seen.append(body["model"])
        return design("lightgbm", model="lightgbm", seed=len(seen)) if len(seen) > 1 else design("own hgb", GOOD)

    with ScriptedChatServer(respond=respond, prompt_tokens=1000, completion_tokens=200) as server:
        out = tmp_path / "run"
        result = cli("solve", EXAMPLE_TASK / "task.yaml", "--out", out, "--budget", "60s", "--quiet", "--workers", "1",
                     "--llm", f"modeler={server.base_url}#gpt-4o-mini", "--llm", "reviewer=offline",
                     "--llm-budget", "0.0006")
    assert result.exit_code == 0, result.output
    assert seen and set(seen) == {"gpt-4o-mini"}
    board = Blackboard(out / "blackboard.sqlite")
    usage = board.llm_usage(role="modeler")
    assert len(usage) == len(server.requests) and all(u.model == "gpt-4o-mini" for u in usage)
    assert {(u.input_tokens, u.output_tokens) for u in usage} == {(1000, 200)}
    per_call = (1000 * 0.15 + 200 * 0.60) / 1e6  # gpt-4o-mini's list price
    assert all(u.cost == pytest.approx(per_call) for u in usage)
    assert board.llm_spend() == pytest.approx(per_call * len(usage))
    assert len(usage) == 3  # $0.0006 covers two calls at $0.00027; the third is charged, then the money is spent
    spent = [m for m in board.messages(kind="brain.fallback") if m.payload.get("reason") == "llm_budget"]
    assert spent and all(m.sent_from == "modeler" for m in spent)  # the expert designs the rest of the run
    own = [e for e in board.experiments() if e.code == GOOD]
    assert own and own[0].status == "done"
    assert json.loads((out / "run.json").read_text())["llm"] == [f"modeler={server.base_url}#gpt-4o-mini",
                                                                 "reviewer=offline"]
    assert os.path.getsize(Path(out / "submission.csv")) > 0


def test_an_auth_error_stops_the_run_at_once_and_keeps_what_finished(tmp_path):
    class AuthenticationError(Exception):
        status_code = 401

    chat = ScriptedChatModel(answers=[design("lightgbm", model="lightgbm"), design("lightgbm", model="lightgbm", seed=1),
                                      AuthenticationError("invalid api key")])
    out = tmp_path / "run"
    with pytest.raises(CrewError, match="refused the credentials"):
        solve(EXAMPLE_TASK / "task.yaml", out=out, brain={"modeler": ChatBrain(chat, prices={"scripted": (0, 0)})},
              workers=1, wall_time=60, seed=0)
    board = Blackboard(out / "blackboard.sqlite")
    assert [e.status for e in board.experiments()] == ["done", "done"]
    report = grade(Task.load(EXAMPLE_TASK / "task.yaml"), out / "submission.csv", EXAMPLE_ANSWERS)
    assert report.valid_submission and report.score > 0.9  # the best finished experiment's, written each round
