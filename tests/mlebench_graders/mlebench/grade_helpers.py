"""The exception of openai/mle-bench's `mlebench/grade_helpers.py` (commit 783b15a) that its graders raise, verbatim."""


class InvalidSubmissionError(Exception):
    """
    A custom exception for when the agent submission cannot be graded.
    """

    pass
