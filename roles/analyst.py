"""The data analyst: profiles the data with polars and reports what the modeler must know."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from crew import Blackboard, Decision, Role
from crew.roles._util import WriteFile, as_task
from crew.tools.profile import DataProfile, profile_task

__all__ = ["Analyst", "DataReport"]

HIGH_CARDINALITY = 30
"""More levels than this and a categorical column is reported as high-cardinality (one-hot pools beyond 30)."""


class DataReport(Decision):
    """The analyst's reading of the data: how to treat each column, and what looks wrong."""

    numeric_columns: list[str] = Field(default_factory=list)
    categorical_columns: list[str] = Field(default_factory=list)
    datetime_columns: list[str] = Field(default_factory=list)
    text_columns: list[str] = Field(default_factory=list)
    high_cardinality_columns: list[str] = Field(default_factory=list, description="categorical columns with more "
                                                "than 30 levels: codes and one-hot lose them; target means may not")
    drop_columns: list[str] = Field(default_factory=list, description="id-like and constant columns: no signal")
    leakage_suspects: list[str] = Field(default_factory=list, description="columns that alone predict the target")
    missing_columns: list[str] = Field(default_factory=list, description="feature columns with missing train values")
    skewed_target: bool = Field(default=False, description="a nonnegative regression target skewed to the right "
                                                           "(skew >= 1): a log target may fit it better")
    issues: list[str] = Field(default_factory=list, description="findings the modeler and reviewer must know")

    def summary(self) -> str:
        parts = [f"{len(self.numeric_columns)} numeric, {len(self.categorical_columns)} categorical"]
        if self.datetime_columns or self.text_columns:
            parts.append(f"{len(self.datetime_columns)} datetime, {len(self.text_columns)} text")
        if self.drop_columns:
            parts.append(f"drop {self.drop_columns}")
        if self.leakage_suspects:
            parts.append(f"leakage suspects {self.leakage_suspects}")
        return "data: " + "; ".join(parts) + (f"; {len(self.issues)} issue(s)" if self.issues else "")


class Analyst(Role):
    """Reads `task` (a Task or task.yaml path) and `run_dir`; writes `data_report` and data_report.md."""

    profile: ClassVar[str] = "analyst"
    goal: ClassVar[str] = ("Profile the training data and report column treatments, missing values, imbalance, "
                           "duplicates and leakage suspects, so that nobody models blind.")
    decision: ClassVar[type[Decision]] = DataReport
    reads: ClassVar[tuple[str, ...]] = ("task", "run_dir")
    writes: ClassVar[tuple[str, ...]] = ("data_report",)
    prompt: ClassVar[str] = (
        "Task: {task}\n\nData profile (from polars; leakage_suspects maps a column to the CV score one-feature "
        "trees reach with it alone):\n{profile}\n\nSort the columns into numeric, categorical, datetime and text; "
        "list columns to drop; confirm leakage suspects; list issues in one line each."
    )

    def context(self, state: Mapping[str, Any]) -> dict[str, Any]:
        context = super().context(state)
        task = as_task(context["task"])
        return {"task": task.summary(), "profile": profile_task(task), "run_dir": str(context["run_dir"])}

    def expert(self, context: Mapping[str, Any]) -> DataReport:
        profile: DataProfile = context["profile"]
        issues = []
        for column in profile.columns:
            if column.missing >= 0.05:
                issues.append(f"{column.name}: {column.missing:.0%} missing")
        if profile.duplicate_rows:
            issues.append(f"{profile.duplicate_rows} train rows repeat another row's features")
        target = profile.target
        if target.imbalance and target.imbalance >= 3:
            issues.append(f"target imbalance {target.imbalance:.1f}:1; stratify folds, watch minority recall")
        if target.missing:
            issues.append(f"{target.missing} rows lack a target and are dropped")
        if target.skew is not None and abs(target.skew) >= 1:
            issues.append(f"target skew {target.skew:.2f}; a log transform may help")
        for name, score in profile.leakage_suspects.items():
            issues.append(f"{name} alone scores {score:.3f}: possible leakage")
        return DataReport(
            rationale=f"profiled {profile.train_rows} train rows and {len(profile.columns)} features",
            numeric_columns=profile.of_kind("numeric", "boolean"),
            categorical_columns=profile.of_kind("categorical"),
            datetime_columns=profile.of_kind("datetime"),
            text_columns=profile.of_kind("text"),
            high_cardinality_columns=[c.name for c in profile.columns
                                      if c.kind == "categorical" and c.n_unique > HIGH_CARDINALITY],
            drop_columns=profile.of_kind("id", "constant"),
            leakage_suspects=list(profile.leakage_suspects),
            missing_columns=[c.name for c in profile.columns if c.missing > 0],
            skewed_target=bool(target.skew is not None and target.skew >= 1 and (target.minimum or 0.0) >= 0),
            issues=issues,
        )

    def act(self, decision: Decision, context: Mapping[str, Any], blackboard: Blackboard) -> dict[str, Any]:
        assert isinstance(decision, DataReport)
        text = render_report(context["task"], context["profile"], decision)
        WriteFile()(actor=self.profile, blackboard=blackboard, path=Path(context["run_dir"]) / "data_report.md", text=text)
        return {"data_report": decision.model_dump(mode="json")}


def render_report(task: Mapping[str, Any], profile: DataProfile, report: DataReport) -> str:
    """The markdown data report a person reads before trusting any score."""
    lines = [f"# Data report: {task['name']}", "", f"- train: {profile.train_rows:,} rows; test: {profile.test_rows:,} rows",
             f"- target: {task.get('target', '')}; metric: {task.get('metric', '')}"]
    if profile.target.classes:
        lines.append("- classes: " + ", ".join(f"{k} ({v})" for k, v in profile.target.classes.items()))
    lines += ["", "| column | kind | dtype | missing | unique | examples |", "| --- | --- | --- | --- | --- | --- |"]
    for c in profile.columns:
        lines.append(f"| {c.name} | {c.kind} | {c.dtype} | {c.missing:.1%} | {c.n_unique} | {', '.join(c.examples[:3])} |")
    texts = [c for c in profile.columns if c.text is not None]
    if texts:
        lines += ["", "## Text", "", "| column | mean chars | longest | mean words | vocabulary | script | language "
                  "hint | characters (train + test) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in texts:
            t = c.text
            assert t is not None
            lines.append(f"| {c.name} | {t.mean_chars:g} | {t.max_chars} | {t.mean_words:g} | {t.vocabulary:,} | "
                         f"{t.script} | {t.language or '-'} | {t.chars:,} |")
    lines += ["", "## Findings", ""] + [f"- {issue}" for issue in report.issues or ["nothing alarming"]]
    if report.drop_columns:
        lines += ["", f"Dropped as carrying no signal: {', '.join(report.drop_columns)}"]
    return "\n".join(lines) + "\n"
