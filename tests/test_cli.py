"""The command line lists only commands that work, and the README's quick start is what CI runs."""

from __future__ import annotations

import re
import sys

from tests.conftest import REPO


def test_help_lists_exactly_the_working_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    listed = set(re.findall(r"^│ (\w[\w-]*)\s", result.stdout, re.MULTILINE)) - {"-"}
    assert listed == {"validate", "grade", "doctor", "solve", "report", "runs", "export-mlflow", "graph", "bench",
                      "import-mlebench", "predict"}


def test_no_arguments_shows_help(cli):
    result = cli()
    assert "validate" in result.output and "grade" in result.output


def test_readme_quick_start_is_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md needs a '## Quick start' section with a bash block"
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, "the quick start is two commands: install + example, then the tests"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in commands:
        assert command in ci, f".ci/run does not run README's {command!r}"


def test_every_readme_cli_example_names_a_real_command(cli):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = "\n".join(re.findall(r"```\w*\n(.*?)```", readme, re.DOTALL))
    commands = set(re.findall(r"(?:^|&& )crew (\w[\w-]*)", code, re.MULTILINE))
    assert commands >= {"validate", "grade"}
    for command in commands:
        assert cli(command, "--help").exit_code == 0, command


def test_readme_python_example_runs(monkeypatch, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    grading, core = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    monkeypatch.chdir(REPO)
    exec(compile(grading, "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["binary ['0', '1'] 300.0", "0.5 True None"]
    exec(compile(core, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out][-3:] == ["analyst", "analyst", "planner"]
    assert out[-1].startswith("planner: plan: 10-fold CV x3; baseline(linear)")


def test_doctor_reports_each_limit(cli):
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    for fragment in ("isolation: memory", "isolation: network", "isolation: user", "isolation: pid",
                     "isolation: filesystem", "isolation: sockets", "isolation: disk", "isolation: audit",
                     "launch check", "ok in", "cores", "gpus"):
        assert fragment in result.stdout
    if sys.platform == "linux":
        from crew.sandbox._doctor import machine_report  # the hook is observed at work, not assumed

        assert "saw the check's socket use" in machine_report()["isolation: audit"]
