"""Code is parsed one thread at a time: CPython < 3.11.8 races in the AST converter (gh-106905)."""

from __future__ import annotations

import ast
import re
import threading

from crew._syntax import parse
from tests.conftest import REPO

PRODUCT = ["crew", "roles", "tools", "workflows", "sandbox"]


def test_product_code_parses_only_through_the_locked_parser():
    direct = []
    for folder in PRODUCT:
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "_syntax.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"\bast\.parse\(", line):
                    direct.append(f"{path.relative_to(REPO)}:{number}")
    assert not direct, f"use crew._syntax.parse instead of ast.parse at {direct}"


def test_parallel_parses_agree_with_a_serial_one():
    source = "\n".join(f"def f{i}(x):\n    return [y ** {i} for y in range(x) if y % 3]" for i in range(300))
    expected = ast.dump(parse(source))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.extend(ast.dump(parse(source)) for _ in range(5)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 30
