"""crew: a team of AI roles that does data-science work end to end.

The public surface is what `__all__` lists (plus the public modules
`crew.types`, `crew.errors` and `crew.testing`); every other module is
private (`_`-prefixed) and may change without notice.
"""

from crew._blackboard import Blackboard, BlackboardError
from crew._brain import Brain, ChatBrain, ExpertBrain, LLMAuthError
from crew._budget import Budget, BudgetExceeded, Remaining
from crew._grading import GradeReport, Placement, grade, medal_positions, place_on_leaderboard
from crew._metrics import METRICS, Metric, best_first, better, get_metric, oriented
from crew._role import Action, MissingStateKeys, NoExpertPolicy, Role, RoleContractError
from crew._task import Task, TaskBudget, TaskData
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
    "CrewError",
    "Decision",
    "Experiment",
    "ExpertBrain",
    "GradeReport",
    "LLMAuthError",
    "LLMUsage",
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
    "Task",
    "TaskBudget",
    "TaskData",
    "TaskError",
    "best_first",
    "better",
    "get_metric",
    "grade",
    "medal_positions",
    "oriented",
    "place_on_leaderboard",
]

__version__ = "0.1.0"
