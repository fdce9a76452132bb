"""`crew predict`: a finished run's final model predicting a table made later, in the task's submission format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from crew import CrewError
from crew.errors import exit_with
from crew.tools.predictor import load_predictor, read_rows

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `crew predict` to the command line (found through the `crew.commands` entry point)."""

    @app.command("predict")
    def predict_command(
        run_dir: Annotated[Path, typer.Argument(help="a finished run's folder (it holds predictor/)")],
        table: Annotated[Path, typer.Argument(help="rows to predict: csv or parquet with the training columns")],
        *,
        out: Annotated[Path | None, typer.Option(help="where to write (default: TABLE's name + .predictions.csv)")] = None,
        proba: Annotated[bool, typer.Option("--proba", help="class probabilities instead of labels")] = False,
    ) -> None:
        """Predict new rows with the model the run kept, checked against the columns it was trained on."""
        try:
            predictor = load_predictor(run_dir, warn=False)
            for note in predictor.version_notes():
                print(f"note: {run_dir}: {note}", file=sys.stderr)
            frame = read_rows(table)
            problems, notes = predictor.check(frame)
            for note in notes:
                print(f"note: {table.name}: {note}", file=sys.stderr)
            if problems:
                for problem in problems:
                    print(f"error: {table.name}: {problem}", file=sys.stderr)
                raise typer.Exit(code=2)
            predictions = predictor.submission(frame, proba=proba)
        except CrewError as exc:
            exit_with(exc)
        target = out or table.with_name(f"{table.stem}.predictions.csv")
        predictions.to_csv(target, index=False)
        print(f"wrote {len(predictions):,} predictions to {target}")
