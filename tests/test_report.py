"""`crew report`, `crew runs` and `crew graph`: the page renders in a real headless Chromium, the lists and
diagrams match the run and the code."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from crew import Blackboard, Experiment, Message, ScoreEntry
from crew.testing import tiny_task
from crew.workflows import diagram
from crew.workflows.report import experiment_tree_layout, report, run_summary
from crew.workflows.solve import solve

pytestmark = pytest.mark.e2e  # whole solves, suites or clusters: not in the fast tier

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
                None)
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    task = tiny_task(root / "task")
    solve(task, out=root / "run", wall_time=90, workers=1, max_experiments=5, seed=0)
    return root / "run"


def test_the_report_holds_every_section_and_one_leaderboard_row_per_experiment(run_dir):
    page = report(run_dir).read_text(encoding="utf-8")
    board = Blackboard(run_dir / "blackboard.sqlite")
    experiments = board.experiments()
    for heading in ("Score over time", "Experiment tree", "Leaderboard", "Roles over time", "Conversation", "Costs"):
        assert f"<h2>{heading}</h2>" in page
    assert "https://" not in page.split("<body>", 1)[1].split("<script>", 1)[0]  # nothing to fetch to read it
    leaderboard = page.split('<table class="leaderboard">', 1)[1].split("</table>", 1)[0]
    assert leaderboard.count("<tr>") == len(experiments) + 1
    for exp in experiments:
        assert f"<code>{exp.id}</code>" in leaderboard
        if (run_dir / "experiments" / exp.id / "code.py").exists():
            assert f'href="experiments/{exp.id}/code.py"' in leaderboard
    assert page.count("<td>") > len(board.messages())  # the conversation is there, message by message
    assert "offline expert brain" in page  # no LLM calls: the costs say who decided


@pytest.mark.skipif(CHROMIUM is None and not IN_CI, reason="no Chromium here (apt install chromium); CI has one")
def test_the_report_renders_in_headless_chromium_without_console_errors(run_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None, "CI must install Chromium (apt install chromium) for the report's browser test"
    path = report(run_dir, out=tmp_path / "report.html")
    experiments = Blackboard(run_dir / "blackboard.sqlite").experiments()
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_selector("#crew-tree .main-svg", timeout=30_000)
        plots = page.locator(".js-plotly-plot").count()
        points = page.locator("#crew-tree .scatterlayer .point").count()
        timeline_traces = page.locator("#crew-timeline .scatterlayer .trace").count()
        shot = Path(os.environ.get("CREW_SCREENSHOTS", tmp_path)) / "report.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert plots == 3
    assert points >= len([e for e in experiments if e.status in ("done", "cached", "failed", "rejected")])
    assert timeline_traces >= 4  # at least workflow, analyst, planner, modeler, ...
    assert shot.stat().st_size > 20_000


def test_the_tree_layout_puts_children_right_of_their_parent_and_centres_parents():
    exps = [Experiment(id="a", insights=["linear"]), Experiment(id="b", parent="a", insights=["linear", "tune"]),
            Experiment(id="c", parent="a", insights=["linear", "regularize"]),
            Experiment(id="d", parent="gone", insights=["x"])]
    layout = experiment_tree_layout(exps)
    assert layout["b"][0] == layout["c"][0] == 1.0 and layout["a"][0] == 0.0
    assert layout["a"][1] == (layout["b"][1] + layout["c"][1]) / 2
    assert layout["d"][0] == 0.0 and len({y for _, y in layout.values()}) == 4


def test_a_kernel_run_reports_its_score_log(tmp_path):
    board = Blackboard(tmp_path / "blackboard.sqlite")
    board.set_task("kern", {"name": "kern", "kind": "kernel"})
    board.add_experiment(Experiment(id="start", insights=["start"], code="x", status="done", score=-7.0))
    board.log_score(ScoreEntry(source="start", score=-7.0, experiment_id="start"))
    board.log_score(ScoreEntry(source="fast", score=-3.0, experiment_id="fast"))
    board.log_score(ScoreEntry(source="wrong", score=None, valid=False))
    board.post(Message(content="scored start", sent_from="workflow", cause_by="workflow.score"))
    summary = run_summary(tmp_path)
    assert (summary["kind"], summary["best"], summary["status"]) == ("kernel", -3.0, "incomplete")
    page = report(tmp_path).read_text(encoding="utf-8")
    assert "has not reached final selection" in page and "Score over time" in page


def test_crew_runs_lists_each_run_with_its_best_score(cli, run_dir, tmp_path):
    result = cli("runs", str(run_dir.parent))
    assert result.exit_code == 0, result.output
    summary = run_summary(run_dir)
    assert summary["status"] == "finished" and summary["task"] in result.output
    assert f"{summary['best']:.5g}" in result.output
    missing = cli("runs", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_crew_report_refuses_a_folder_that_is_not_a_run(cli, tmp_path):
    result = cli("report", str(tmp_path))
    assert result.exit_code == 2 and "not a crew run folder" in result.output


@pytest.mark.parametrize("name", diagram.GRAPHS)
def test_crew_graph_prints_the_real_workflow_as_mermaid(cli, name):
    result = cli("graph", name)
    assert result.exit_code == 0, result.output
    assert result.output.lstrip("-\n ").startswith("config:") or "graph TD" in result.output
    expected = {"solve": ("analyst", "planner", "modeler", "critic", "review", "finalize"),
                "optimize": ("optimizer", "critic", "confirm", "finalize")}[name]
    for node in expected:
        assert re.search(rf"\b{node}\b", result.output), node


def test_crew_graph_refuses_unknown_workflows_and_formats(cli, tmp_path):
    assert "unknown workflow" in cli("graph", "nope").output
    result = cli("graph", "solve", "--out", str(tmp_path / "g.pdf"))
    assert result.exit_code == 2 and ".svg or .png" in result.output


@pytest.mark.skipif(shutil.which("dot") is None and not IN_CI, reason="no Graphviz here (apt install graphviz)")
def test_crew_graph_draws_an_svg_with_graphviz(cli, tmp_path):
    result = cli("graph", "solve", "--out", str(tmp_path / "solve.svg"))
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "solve.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "modeler" in svg and "critic" in svg
