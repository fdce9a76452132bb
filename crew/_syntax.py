"""A thread-safe `ast.parse`: the critic, the reviewer and the cost model read code from parallel experiment branches.

CPython before 3.11.8 and 3.12.1 shares the AST converter's recursion counter
between threads (gh-106905), so two threads parsing at once can fail with
"SystemError: AST constructor recursion depth mismatch". One lock serialises
parsing; it costs microseconds next to an experiment.
"""

from __future__ import annotations

import ast
import threading

__all__ = ["parse"]

_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse(source)`, one thread at a time."""
    with _LOCK:
        return ast.parse(source, filename=filename)
