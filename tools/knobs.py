"""The knobs a cheaper variant may turn (tuning trials, bagged seeds, CV repeats, folds, estimators, rows): where
they sit in a script, and rewriting their literals in place.

The critic's variants and the cost model's reading of a script's workload (`crew.tools.cost.read_workload`) use
the same names, so that what the cost model counts is what a variant can change.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from crew import parse_python as parse

__all__ = ["KNOBS", "KNOB_NAMES", "apply_changes", "exposed"]

KNOBS = ("tune_trials", "bags", "repeats", "folds", "estimators", "subsample", "epochs", "batch", "image_size")
"""What a cheaper variant may change, in the order the expert gives them up (a network's epochs, its batch when its
GPU slot is short of memory, then the side its images are resized to)."""

KNOB_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # knob -> (top-level constants, keyword / dict-key names)
    "tune_trials": (("TUNE_TRIALS", "N_TRIALS"), ("n_trials",)),
    "bags": (("BAGS", "N_BAGS", "N_SEEDS"), ()),
    "repeats": (("REPEATS", "N_REPEATS", "CV_REPEATS"), ("n_repeats",)),
    "folds": (("FOLDS", "N_FOLDS", "N_SPLITS", "NFOLDS", "K_FOLDS"), ("n_splits",)),
    "estimators": ((), ("n_estimators", "max_iter", "num_boost_round", "iterations", "num_iterations", "estimators")),
    "subsample": (("SUBSAMPLE", "MAX_ROWS", "SAMPLE_ROWS"), ()),
    "epochs": (("EPOCHS", "N_EPOCHS"), ("epochs",)),
    "batch": (("BATCH_SIZE",), ("batch",)),
    "image_size": (("IMAGE_SIZE",), ("image_size",)),
}
"""Knob -> (the top-level constants that set it, the keyword or dict-key names that set it)."""


def _knob_nodes(tree: ast.AST, knob: str) -> list[ast.Constant]:
    constants, keys = KNOB_NAMES[knob]
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in constants for t in node.targets):
            if isinstance(node.value, ast.Constant) and (node.value.value is None or isinstance(node.value.value, int)):
                found.append(node.value)
        elif isinstance(node, ast.Call):
            found += [k.value for k in node.keywords
                      if k.arg in keys and isinstance(k.value, ast.Constant) and isinstance(k.value.value, int)]
        elif isinstance(node, ast.Dict):
            found += [v for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value in keys and isinstance(v, ast.Constant)
                      and isinstance(v.value, int)]
    return found


def apply_changes(code: str, changes: Mapping[str, int]) -> str:
    """Rewrite the knobs' literals in place (by syntax-tree position, so comments and layout survive).

    Raises ValueError for a knob the code does not expose, because a variant
    that silently changes nothing would be approved under a false estimate.
    """
    tree = parse(code)
    edits: list[tuple[int, int, int, int, str]] = []
    for knob, value in changes.items():
        if knob not in KNOB_NAMES:
            raise ValueError(f"unknown knob {knob!r}; a variant may change {', '.join(KNOBS)}")
        nodes = _knob_nodes(tree, knob)
        if not nodes:
            raise ValueError(f"the code exposes no {knob} setting to change")
        edits += [(n.lineno, n.col_offset, n.end_lineno or n.lineno, n.end_col_offset or 0, repr(int(value)))
                  for n in nodes]
    lines = code.splitlines(keepends=True)
    for start_line, start_col, end_line, end_col, text in sorted(edits, reverse=True):
        if start_line != end_line:
            raise ValueError("a knob literal spans lines; cannot rewrite it safely")
        line = lines[start_line - 1]
        prefix = line.encode()[:start_col].decode()
        suffix = line.encode()[end_col:].decode()
        lines[start_line - 1] = prefix + text + suffix
    return "".join(lines)


def exposed(code: str) -> set[str]:
    """The knobs `code` sets as literals, which a variant can therefore change."""
    tree = parse(code)
    return {knob for knob in KNOBS if _knob_nodes(tree, knob)}
