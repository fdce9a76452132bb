"""Embed crew's roles in your own LangGraph graph: the analyst and the reviewer around your own modeling node.

    python examples/embed_roles.py [TASK_YAML] [--out DIR]

The analyst profiles the data and writes its report; `my_model` is yours:
here a scaled logistic regression written as a standalone script that
follows crew's experiment contract, put on the blackboard and run by crew's
own `launch` (the sandbox with the task's answers hidden, under the run's
budget; the run's objects reach the nodes as LangGraph's runtime context).
The reviewer then checks it as strictly as it checks the team's own
experiments (valid submission, CV recomputed from the out-of-fold
predictions, predictions that come from the model). Any binary task in crew's format works; the
default is the example breast-cancer task.
"""


import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from crew import Blackboard, Budget, Experiment, Task
from crew.roles.analyst import Analyst
from crew.roles.reviewer import Reviewer
from crew.workflows.experiment import RunContext, launch

HERE = Path(__file__).resolve().parent
DEFAULT_TASK = HERE / "tasks" / "breast-cancer" / "task.yaml"

SCRIPT = '''
import json, os
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

root = os.environ["CREW_DATA"]
train = pd.read_csv(os.path.join(root, {train!r}))
test = pd.read_csv(os.path.join(root, {test!r}))
features, target, ident, classes = {features!r}, {target!r}, {ident!r}, {classes!r}
X, X_test = train[features].fillna(0), test[features].fillna(0)
y = (train[target].astype(str) == classes[1]).astype(int).to_numpy()
oof, test_pred, folds = np.zeros(len(train)), np.zeros(len(test)), []
for fit, valid in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)).fit(X.iloc[fit], y[fit])
    oof[valid] = model.predict_proba(X.iloc[valid])[:, 1]
    folds.append(roc_auc_score(y[valid], oof[valid]))
    test_pred += model.predict_proba(X_test)[:, 1] / 5

def table(ids, p):
    return pd.DataFrame({{ident: ids, classes[0]: 1 - p, classes[1]: p}})

table(train[ident], oof).to_csv("oof.csv", index=False)
table(test[ident], test_pred).to_csv("test_pred.csv", index=False)
pd.DataFrame({{ident: test[ident], target: test_pred}}).to_csv("predictions.csv", index=False)
json.dump({{"metric": "roc_auc", "cv": roc_auc_score(y, oof), "cv_std": float(np.std(folds)), "folds": folds,
           "train_score": roc_auc_score(y, model.predict_proba(X)[:, 1])}}, open("metrics.json", "w"))
'''


class MyState(TypedDict, total=False):
    task: str
    run_dir: str
    blackboard: str
    data_report: dict[str, Any]
    result: dict[str, Any]
    review: dict[str, Any]


def my_model(state: MyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Your own modeling step: any code that writes crew's experiment files, run in crew's sandbox."""
    run = runtime.context
    task = run.task
    report = state["data_report"]
    code = SCRIPT.format(train=task.data.train, test=task.data.test, features=report["numeric_columns"],
                         target=task.target, ident=task.id_column, classes=task.classes)
    experiment = run.blackboard.add_experiment(Experiment(stage="model", insights=["my_logistic_regression"],
                                                          code=code, spec={"model": "my_logistic_regression"}))
    return {"result": {"experiment": experiment.id, **launch(run, experiment.id, code)}}


def build() -> Any:
    graph = StateGraph(MyState, context_schema=RunContext)
    graph.add_node("analyst", Analyst())
    graph.add_node("my_model", my_model)
    graph.add_node("reviewer", Reviewer())
    graph.add_edge(START, "analyst")
    graph.add_edge("analyst", "my_model")
    graph.add_edge("my_model", "reviewer")
    graph.add_edge("reviewer", END)
    return graph.compile()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default=str(DEFAULT_TASK))
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="crew-embed-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    task = Task.load(args.task)
    if task.target_type != "binary":
        raise SystemExit(f"{task.root}: this example's model is for binary tasks; {task.name} is {task.target_type}")
    board = Blackboard(run_dir / "blackboard.sqlite")
    context = RunContext(task=task, run_dir=run_dir, blackboard=board, budget=Budget.from_task(task))
    final = build().invoke({"task": args.task, "run_dir": str(run_dir), "blackboard": str(board.path)},
                           context=context)
    review = final["review"]
    print(f"analyst: {len(final['data_report']['numeric_columns'])} numeric columns; report in {run_dir / 'data_report.md'}")
    print(f"reviewer: {'accepted' if review['accepted'] else 'rejected'}, cv {review['score']}")
    for issue in review["issues"]:
        print(f"  - {issue}")
    print(json.dumps(review["checks"], indent=1))
    return final


if __name__ == "__main__":
    main()
