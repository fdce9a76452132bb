"""`diagram`: the solve and optimize workflows as Mermaid text, or as SVG / PNG drawn by Graphviz.

The drawing is of the real compiled graphs (LangGraph's own `get_graph`),
so the picture cannot drift from the code; both compile without a run (a
run arrives as LangGraph's runtime context), so no task is needed.
Mermaid needs nothing to print; an image needs Graphviz's `dot` program,
because LangGraph's own PNG renderers call a web service or need pygraphviz.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["GRAPHS", "drawable", "mermaid", "render", "to_dot"]

GRAPHS = ("solve", "optimize")


def drawable(name: str) -> Any:
    """LangGraph's drawable graph of workflow `name`, subgraphs expanded (the experiment branch of solve)."""
    from crew.workflows.optimize import build_optimize_graph
    from crew.workflows.solve import build_solve_graph

    if name not in GRAPHS:
        raise ValueError(f"unknown workflow {name!r}; choose one of {', '.join(GRAPHS)}")
    return (build_solve_graph() if name == "solve" else build_optimize_graph()).get_graph(xray=1)


def mermaid(name: str) -> str:
    """The workflow as a Mermaid flowchart (paste it into any Markdown that renders Mermaid)."""
    return drawable(name).draw_mermaid()


def to_dot(name: str) -> str:
    """The workflow in Graphviz's DOT language: solid edges always run, dashed ones are chosen at run time."""
    graph = drawable(name)
    lines = [f'digraph "{name}" {{', '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica"]; edge [fontname="Helvetica", fontsize=10];']
    for node_id, node in graph.nodes.items():
        label = node.name.replace('"', "'")
        shape = ', shape=oval, fillcolor="#dddddd"' if node_id in ("__start__", "__end__") else ""
        lines.append(f'  "{node_id}" [label="{label}"{shape}];')
    for edge in graph.edges:
        style = ' [style=dashed]' if edge.conditional else ""
        lines.append(f'  "{edge.source}" -> "{edge.target}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(name: str, path: str | Path) -> Path:
    """Draw the workflow to `path`, an .svg or .png, with Graphviz's `dot`."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise ValueError(f"{path}: write a .svg or .png (or print Mermaid without --out)")
    dot = shutil.which("dot")
    if dot is None:
        raise FileNotFoundError("drawing an image needs Graphviz's `dot` program: install Graphviz (Debian/Ubuntu: "
                                "apt install graphviz; macOS: brew install graphviz), or print Mermaid without --out")
    done = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=to_dot(name), text=True, capture_output=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed drawing {path}: {done.stderr.strip()[:500]}")
    return path
