"""A run's final model: `crew solve` keeps it, `crew.load` and `crew predict` reproduce the run's submission with it,
and every bad input (columns, types, an empty file, no model, a tampered file) is a one-line error with exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import crew
from crew import Task
from crew.workflows.solve import solve
from tests.conftest import EXAMPLE_TASK

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's limits are Linux mechanisms")]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One short solve of the example task, shared by the tests of this module (they only read it)."""
    out = tmp_path_factory.mktemp("predict") / "run"
    summary = solve(EXAMPLE_TASK / "task.yaml", out=out, wall_time=60, workers=2, max_experiments=5)
    assert summary["final"]["predictor"]["saved"], summary["final"]["predictor"]
    return out


def _test_frame() -> pd.DataFrame:
    task = Task.load(EXAMPLE_TASK)
    return pd.read_csv(task.path(task.data.test))


def test_the_kept_model_reproduces_the_submission(run: Path) -> None:
    predictor = crew.load(run)
    manifest = json.loads((run / "predictor" / "predictor.json").read_text())
    assert manifest["kind"] in ("single", "ensemble", "stack") and manifest["members"]
    assert all(len(m["sha256"]) == 64 for m in manifest["members"]) and manifest["versions"]["scikit-learn"]
    test = _test_frame()
    submitted = pd.read_csv(run / "submission.csv")
    mine = predictor.submission(test)
    assert list(mine.columns) == list(submitted.columns)
    target = list(submitted.columns)[-1]
    assert mine[target].to_numpy() == pytest.approx(submitted[target].to_numpy(), abs=1e-9)
    assert predictor.predict_proba(test).shape == (len(test), len(predictor.classes_))
    assert set(predictor.predict(test)) <= set(predictor.classes_)
    assert "experiments:" in predictor.describe() and predictor.feature_names_in_


def test_crew_predict_writes_the_submission_for_a_later_file(run: Path, tmp_path: Path, cli) -> None:
    later = _test_frame().sample(frac=1.0, random_state=0)  # the same rows, another order, made later
    later["unused"] = 1
    later.to_csv(tmp_path / "later.csv", index=False)
    result = cli("predict", run, tmp_path / "later.csv", "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert "'unused' are not read" in result.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    submitted = pd.read_csv(run / "submission.csv")
    merged = out.merge(submitted, on=submitted.columns[0], suffixes=("", "_run"))
    target = submitted.columns[-1]
    assert len(merged) == len(submitted) and np.allclose(merged[target], merged[f"{target}_run"], atol=1e-9)


def test_bad_tables_are_one_line_errors(run: Path, tmp_path: Path, cli) -> None:
    test = _test_frame()
    feature = next(c for c in test.columns if c != "id")
    test.drop(columns=[feature]).to_csv(tmp_path / "missing.csv", index=False)
    result = cli("predict", run, tmp_path / "missing.csv")
    assert result.exit_code == 2 and f"column {feature!r} is missing" in result.stderr
    wrong = test.copy()
    wrong[feature] = wrong[feature].astype(object)
    wrong.loc[:2, feature] = "lots"
    wrong.to_csv(tmp_path / "wrong.csv", index=False)
    result = cli("predict", run, tmp_path / "wrong.csv")
    assert result.exit_code == 2 and "should hold numbers; 3 row(s) hold text such as 'lots'" in result.stderr
    (tmp_path / "empty.csv").write_text("")
    result = cli("predict", run, tmp_path / "empty.csv")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "empty.csv" in result.stderr
    result = cli("predict", tmp_path, tmp_path / "wrong.csv")
    assert result.exit_code == 2 and "holds no predictor" in result.stderr


def test_a_tampered_model_file_is_refused(run: Path, tmp_path: Path, cli) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run / "predictor", copy / "predictor")
    member = next((copy / "predictor").glob("*.skops"))
    member.write_bytes(member.read_bytes()[:-10] + b"0123456789")
    _test_frame().to_csv(tmp_path / "test.csv", index=False)
    result = cli("predict", copy, tmp_path / "test.csv")
    assert result.exit_code == 2 and "does not match the SHA-256" in result.stderr
    with pytest.raises(crew.CrewError, match="SHA-256"):
        crew.load(copy)


def test_a_model_saved_by_other_library_versions_loads_with_a_note(run: Path, tmp_path: Path, cli) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run / "predictor", copy / "predictor")
    manifest = json.loads((copy / "predictor" / "predictor.json").read_text())
    manifest["versions"]["scikit-learn"] = "1.0.0"
    (copy / "predictor" / "predictor.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match=r"saved with scikit-learn 1\.0\.0, read with "):
        predictor = crew.load(copy)
    assert len(predictor.version_notes()) == 1
    _test_frame().to_csv(tmp_path / "test.csv", index=False)
    result = cli("predict", copy, tmp_path / "test.csv", "--out", tmp_path / "out.csv")
    assert result.exit_code == 0 and "install scikit-learn==1.0.0 to match the run exactly" in result.stderr
    assert not crew.load(run).version_notes()


def test_the_predict_later_example_runs_on_a_finished_run(run: Path, capsys) -> None:
    import runpy

    from tests.conftest import REPO

    out = runpy.run_path(str(REPO / "examples" / "predict_later.py"))["main"]([str(run)])
    assert len(out) == len(_test_frame()) and set(out["prediction"]) <= {"0", "1"}
    assert "experiments:" in capsys.readouterr().out


def test_the_report_shows_the_kept_model(run: Path, tmp_path: Path) -> None:
    from crew.workflows.report import report

    page = report(run, out=tmp_path / "report.html").read_text()
    final = json.loads((run / "predictor" / "predictor.json").read_text())
    assert "<h2>Final model</h2>" in page and "crew predict RUN_DIR TABLE" in page
    assert all(m["name"] in page.split("<h2>Final model</h2>")[1] for m in final["members"])


def test_the_predict_speed_bench_times_the_kept_model(run: Path) -> None:
    import runpy

    from tests.conftest import REPO

    result = runpy.run_path(str(REPO / "bench" / "predict_speed.py"))["main"]([str(run), "--rows", "3000",
                                                                                "--repeats", "1"])
    assert result["rows"] == 3000 and result["members"] >= 1
    assert result["predictor_seconds"] > 0 and result["ratio"] > 0
