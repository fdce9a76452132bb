"""bench/hostile.py's catalogue, without its 15-minute run: every attack states its outcome, and every attack meant for
the sandbox really reaches it (no syntax check stops it first, so the suite measures the sandbox, not the critic)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from crew.tools.codecheck import check_code

from .conftest import REPO

_spec = importlib.util.spec_from_file_location("bench_hostile", REPO / "bench" / "hostile.py")
hostile = importlib.util.module_from_spec(_spec)
sys.modules["bench_hostile"] = hostile  # dataclasses look their module up by name
_spec.loader.exec_module(hostile)


def _host(tmp_path: Path):
    return hostile.Host(base=tmp_path, task_dir=tmp_path / "task", run_dir=tmp_path / "run",
                        secret_file=tmp_path / "credentials", token="abcdef012345", tcp_port=1, udp_port=2,
                        unix_path=str(tmp_path / "host.sock"), abstract="\0crew-hostile")


def test_every_attack_names_its_expected_outcome_once():
    attacks = hostile.attacks()
    names = [a.name for a in attacks]
    assert len(names) == len(set(names)) and len(names) >= 38
    assert {a.expect for a in attacks} <= {"contained", "rejected", "caught"}
    # the attacks issue 18 found succeeding are all in the suite
    for needed in ("read /etc/shadow", "SIGSTOP crew", "host unix socket", "metrics.json links to a secret",
                   "disk fill", "huge outputs for the reviewer", "90,000 fold scores", "walk the filesystem for answers",
                   "a tweaked sample submission", "poison the stage cache", "in-sample out-of-fold predictions",
                   "a feature computed from the target"):
        assert needed in names


def test_attacks_reach_the_sandbox_past_the_syntax_check(tmp_path):
    host = _host(tmp_path)
    for attack in hostile.attacks():
        code = attack.code(host)
        compile(code, attack.name, "exec")
        blocking = [f for f in check_code(code, forbidden_paths=[str(host.task_dir / "grading")]) if f.blocking]
        assert not blocking, (attack.name, blocking)
