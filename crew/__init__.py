"""crew: a team of AI roles that does data-science work end to end.

The public surface is what `__all__` lists (plus the public modules
`crew.types`, `crew.errors` and `crew.testing`); every other module is
private (`_`-prefixed) and may change without notice.
"""

from pathlib import Path
from typing import Any

from crew._blackboard import Blackboard, BlackboardError
from crew._brain import Brain, ChatBrain, ExpertBrain, LLMAuthError, brain_for, team_brains
from crew._budget import Budget, BudgetExceeded, Remaining
from crew._grading import GradeReport, Placement, check_submission, grade, medal_positions, place_on_leaderboard
from crew._long import LongSubmission
from crew._media import problems as media_problems
from crew._metrics import METRICS, Metric, best_first, better, canonical_labels, get_metric, oriented, positive_label
from crew._role import Action, MissingStateKeys, NoExpertPolicy, Role, RoleContractError
from crew._syntax import parse as parse_python
from crew._tables import TableError, read_table
from crew._task import Task, TaskBudget, TaskData
from crew._units import parse_duration
from crew.errors import CrewError, Problem, SubmissionError, TaskError
from crew.types import Decision, Experiment, LLMUsage, Message, ScoreEntry

__all__ = [
    "METRICS",
    "Action",
    "Blackboard",
    "BlackboardError",
    "Brain",
    "Budget",
    "BudgetExceeded",
    "ChatBrain",
    "CrewClassifier",
    "CrewError",
    "CrewRegressor",
    "Decision",
    "Experiment",
    "ExpertBrain",
    "GradeReport",
    "LLMAuthError",
    "LLMUsage",
    "LongSubmission",
    "Message",
    "Metric",
    "MissingStateKeys",
    "NoExpertPolicy",
    "Placement",
    "Problem",
    "Remaining",
    "Role",
    "RoleContractError",
    "ScoreEntry",
    "SubmissionError",
    "TableError",
    "Task",
    "TaskBudget",
    "TaskData",
    "TaskError",
    "best_first",
    "better",
    "brain_for",
    "canonical_labels",
    "check_submission",
    "get_metric",
    "grade",
    "load",
    "medal_positions",
    "media_problems",
    "oriented",
    "parse_duration",
    "parse_python",
    "place_on_leaderboard",
    "positive_label",
    "read_table",
    "team_brains",
]

__version__ = "0.1.0"


def load(run_dir: str | Path) -> Any:
    """A finished run's final model (the tools' `Predictor`): `predict`, `predict_proba`, `classes_`,
    `feature_names_in_`, `check(frame)`, `describe()`. Its files are checked against the SHA-256 the run recorded
    and loaded without running code (skops). The core imports none of the folders built on it: the loader is
    found, like the CLI's commands, through an entry point (`crew.loaders`)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="crew.loaders", name="predictor"):
        return entry.load()(run_dir)
    raise CrewError("no predictor loader is installed (crew.loaders: predictor); reinstall crew")


def __getattr__(name: str) -> Any:
    """`crew.CrewClassifier` and `crew.CrewRegressor`, scikit-learn estimators whose fit is a solve: found, like
    `load`, through an entry point (`crew.estimators`), since the core imports none of the folders."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="crew.estimators", name=name):
        return entry.load()
    raise AttributeError(f"module 'crew' has no attribute {name!r}")
