"""`report`: one self-contained HTML page of a run folder: scores, the experiment tree, the roles and their costs.

Everything comes from the blackboard (DESIGN.md: it is the source of
truth), so a killed, resumed or finished run can be reported alike. The
page embeds plotly.js, so it opens without network; experiment code links
point into the run folder's `experiments/<id>/code.py`.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from crew import METRICS, Blackboard, Experiment, Message, best_first, better

__all__ = ["experiment_tree_layout", "report", "run_summary"]

_STATUS_SYMBOL = {"done": "circle", "cached": "circle-open", "failed": "x", "rejected": "x-thin-open",
                  "proposed": "diamond-open", "running": "diamond"}
_STATUS_COLOUR = {"failed": "#d62728", "rejected": "#7f7f7f", "proposed": "#bcbd22", "running": "#17becf"}
_ROLE_ORDER = ("workflow", "analyst", "planner", "modeler", "optimizer", "critic", "sandbox", "reviewer")


def _start(experiments: Sequence[Experiment], messages: Sequence[Message]) -> float:
    times = [m.created_at for m in messages] + [e.created_at for e in experiments]
    return min(times) if times else time.time()


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """What `crew runs` lists and the report's header shows: task, metric, best score, status, duration."""
    run_dir = Path(run_dir)
    board = Blackboard(run_dir / "blackboard.sqlite")
    return _summary(board, run_dir, board.experiments())


def _summary(board: Blackboard, run_dir: Path, experiments: Sequence[Experiment]) -> dict[str, Any]:
    task = board.task() or {}
    spec = task.get("spec", {})
    metric = spec.get("metric")
    higher = METRICS[metric].higher_is_better if metric in METRICS else True  # a kernel's score: higher is better
    if spec.get("kind") == "kernel":
        valid = [s.score for s in board.scores() if s.valid and s.score is not None]
        best = max(valid) if valid else None
    else:
        leader = board.best(1, higher_is_better=higher)
        best = leader[0].score if leader else None
    counts: dict[str, int] = {}
    for e in experiments:
        counts[e.status] = counts.get(e.status, 0) + 1
    final = board.get_meta("final")
    return {"run": run_dir.name, "path": str(run_dir), "task": task.get("name") or spec.get("name") or "?",
            "kind": spec.get("kind", "tabular"), "metric": metric, "higher_is_better": higher,
            "best": best, "final": final or {}, "status": "finished" if final else "incomplete",
            "elapsed": float(board.get_meta("elapsed", 0.0) or 0.0), "experiments": len(experiments),
            "counts": counts}


def _final_model(final: dict[str, Any], experiments: Sequence[Experiment]) -> str:
    """The model the run kept (`predictor/`): what it is, which experiments it is made of with their weights and
    refit times, its size, or why there is none."""
    kept = final.get("predictor") or {}
    if not final:
        return ""
    if not kept.get("saved"):
        why = kept.get("reason") or "final selection kept none (a constant submission, or a run from before crew " \
                                    "kept models)"
        return f"<h2>Final model</h2><p>No model kept: {html.escape(str(why))}</p>"
    by_id = {e.id: e for e in experiments}
    rows = []
    for name, weight in (final.get("weights") or {}).items():
        exp = by_id.get(name)
        timings = (exp.metrics.get("timings") or {}) if exp else {}
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{weight}</td>"
                    f"<td>{html.escape(', '.join(exp.insights) if exp else '')}</td>"
                    f"<td>{_fmt(timings.get('refit'))}</td><td>{_fmt(timings.get('save_model'))}</td></tr>")
    return (f"<h2>Final model</h2><p>{html.escape(str(final.get('kind', '')))} kept in "
            f"<code>{html.escape(str(kept.get('path', '')))}</code> ({float(kept.get('bytes') or 0) / 2**20:.1f} MB, "
            f"manifest SHA-256 <code>{html.escape(str(kept.get('sha256', ''))[:16])}…</code>); predict with "
            "<code>crew predict RUN_DIR TABLE</code> or <code>crew.load(RUN_DIR)</code>.</p>"
            "<table><tr><th>experiment</th><th>weight</th><th>insights</th><th>refit on every row (s)</th>"
            f"<th>save (s)</th></tr>{''.join(rows)}</table>")


def experiment_tree_layout(experiments: Sequence[Experiment]) -> dict[str, tuple[float, float]]:
    """(x, y) per experiment: depth across, leaves stacked down in depth-first order, a parent centred on its
    children; orphans (a parent not on the board) are roots."""
    ids = {e.id for e in experiments}
    children: dict[str | None, list[Experiment]] = {}
    for e in experiments:
        children.setdefault(e.parent if e.parent in ids else None, []).append(e)
    position: dict[str, tuple[float, float]] = {}
    next_row = [0.0]

    def place(node: Experiment, depth: int) -> float:
        kids = children.get(node.id, [])
        if not kids:
            y = next_row[0]
            next_row[0] += 1
        else:
            ys = [place(kid, depth + 1) for kid in kids]
            y = (min(ys) + max(ys)) / 2
        position[node.id] = (float(depth), y)
        return y

    for root in children.get(None, []):
        place(root, 0)
    return position


def _fmt(value: float | None, digits: int = 5) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _size(value: int | float | None) -> str:
    if not value:
        return ""
    return f"{value / 1024**2:.0f} MiB"


def _hover(e: Experiment) -> str:
    estimate = e.estimate or {}
    lines = [f"<b>{e.id}</b> ({e.status})", "+".join(e.insights) or "(no insight)"]
    if e.score is not None:
        lines.append(f"cv {_fmt(e.score)}" + (f" ± {_fmt(e.metrics.get('cv_std'), 3)}" if e.metrics.get("cv_std") else ""))
    if e.wall_time is not None:
        lines.append(f"time {e.wall_time:.1f}s (critic's estimate {_fmt(estimate.get('seconds'), 3)}s)")
    if e.peak_memory:
        lines.append(f"memory {_size(e.peak_memory)} (estimate {_size(estimate.get('memory'))})")
    if e.error:
        lines.append(html.escape(e.error.splitlines()[0][:120]))
    lines.append("click: open code.py")
    return "<br>".join(lines)


def _tree_figure(experiments: Sequence[Experiment], higher: bool) -> go.Figure:
    layout = experiment_tree_layout(experiments)
    fig = go.Figure()
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for e in experiments:
        if e.parent in layout and e.id in layout:
            (x0, y0), (x1, y1) = layout[e.parent], layout[e.id]
            edge_x += [x0, x1, None]
            edge_y += [y0, y1, None]
    fig.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#c7c7c7", "width": 1},
                             hoverinfo="skip", showlegend=False))
    scored = [e for e in experiments if e.status in ("done", "cached") and e.score is not None and e.id in layout]
    if scored:
        fig.add_trace(go.Scatter(
            x=[layout[e.id][0] for e in scored], y=[layout[e.id][1] for e in scored], mode="markers", name="scored",
            marker={"size": 13, "color": [e.score for e in scored], "colorscale": "Viridis", "reversescale": not higher,
                    "symbol": [_STATUS_SYMBOL[e.status] for e in scored], "line": {"width": 1, "color": "#333"},
                    "colorbar": {"title": {"text": "CV"}}},
            text=[_hover(e) for e in scored], hoverinfo="text", customdata=[e.id for e in scored]))
    for status in ("failed", "rejected", "proposed", "running"):
        group = [e for e in experiments if e.status == status and e.id in layout]
        if group:
            fig.add_trace(go.Scatter(
                x=[layout[e.id][0] for e in group], y=[layout[e.id][1] for e in group], mode="markers", name=status,
                marker={"size": 12, "color": _STATUS_COLOUR[status], "symbol": _STATUS_SYMBOL[status]},
                text=[_hover(e) for e in group], hoverinfo="text", customdata=[e.id for e in group]))
    fig.update_layout(title="Experiment tree (parent → child; colour: CV score)", height=max(360, 22 * len(layout)),
                      xaxis={"title": "depth (insights added)", "dtick": 1}, yaxis={"visible": False, "autorange": "reversed"},
                      legend={"orientation": "h"}, margin={"l": 20, "r": 20, "t": 50, "b": 40})
    return fig


def _score_figure(board: Blackboard, experiments: Sequence[Experiment], start: float, higher: bool,
                  budget: float | None, kernel: bool) -> go.Figure:
    if kernel:
        points = [(s.at - start, s.score, s.source) for s in board.scores() if s.valid and s.score is not None]
    else:
        points = sorted((e.finished_at - start, e.score, e.id) for e in experiments
                        if e.status == "done" and e.score is not None and e.finished_at)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name="experiment",
                             text=[p[2] for p in points], hovertemplate="%{text}<br>%{x:.1f}s: %{y:.5g}<extra></extra>"))
    best_x, best_y, best = [], [], None
    for x, y, _ in sorted(points):
        if better(y, best, higher):
            best = y
        best_x.append(x)
        best_y.append(best)
    fig.add_trace(go.Scatter(x=best_x, y=best_y, mode="lines", line={"shape": "hv"}, name="best so far"))
    if budget:
        fig.add_vline(x=budget, line={"color": "#d62728", "dash": "dash"}, annotation_text="wall-time budget")
    fig.update_layout(title="Score over time", xaxis={"title": "seconds since the run started"},
                      yaxis={"title": "score" if kernel else "CV score"}, height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


def _timeline_figure(messages: Sequence[Message], start: float) -> go.Figure:
    roles = [r for r in _ROLE_ORDER if any(m.sent_from == r for m in messages)]
    roles += sorted({m.sent_from for m in messages} - set(roles))
    fig = go.Figure()
    for role in roles:
        mine = [m for m in messages if m.sent_from == role]
        fig.add_trace(go.Scatter(x=[m.created_at - start for m in mine], y=[role] * len(mine), mode="markers",
                                 name=role, marker={"symbol": "line-ns-open", "size": 14, "line": {"width": 2}},
                                 text=[html.escape(m.content[:160]) for m in mine],
                                 hovertemplate="%{x:.1f}s %{y}: %{text}<extra></extra>"))
    fig.update_layout(title="Who acted when", xaxis={"title": "seconds since the run started"},
                      yaxis={"categoryorder": "array", "categoryarray": list(reversed(roles))},
                      height=120 + 36 * max(1, len(roles)), showlegend=False,
                      margin={"l": 90, "r": 20, "t": 50, "b": 40})
    return fig


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _leaderboard(experiments: Sequence[Experiment], higher: bool, run_dir: Path) -> str:
    ranked = best_first(experiments, higher)
    ranked += [e for e in experiments if e.score is None]
    rows = []
    for i, e in enumerate(ranked, 1):
        code = run_dir / "experiments" / e.id / "code.py"
        link = f'<a href="experiments/{e.id}/code.py">code</a>' if code.exists() else ""
        estimate = e.estimate or {}
        rows.append([str(i) if e.score is not None else "", f"<code>{e.id}</code>", html.escape(" + ".join(e.insights)),
                     html.escape(str(e.spec.get("model", ""))), e.status, _fmt(e.score),
                     _fmt(e.metrics.get("cv_std"), 3), "" if e.wall_time is None else f"{e.wall_time:.1f}s",
                     _fmt(estimate.get("seconds"), 3) + ("s" if estimate.get("seconds") else ""),
                     _size(e.peak_memory), link])
    return _table(["#", "id", "insights", "model", "status", "CV", "± (folds)", "time", "critic's estimate",
                   "peak memory", ""], rows, css="leaderboard")


def _conversation(messages: Sequence[Message], start: float) -> str:
    rows = []
    for m in messages:
        to = ", ".join(m.send_to)
        rows.append([f"{m.created_at - start:.1f}s", f'<span class="role">{html.escape(m.sent_from)}</span>',
                     html.escape(to), f"<code>{html.escape(m.cause_by)}</code>", html.escape(m.content)])
    return _table(["at", "from", "to", "kind", "message"], rows, css="conversation")


def _costs(board: Blackboard, experiments: Sequence[Experiment], summary: dict[str, Any]) -> str:
    ran = [e for e in experiments if e.wall_time]
    usage = board.llm_usage()
    by_role: dict[str, list[float]] = {}
    for u in usage:
        row = by_role.setdefault(f"{u.role} ({u.model})", [0, 0, 0, 0.0])
        row[0] += 1
        row[1] += u.input_tokens
        row[2] += u.output_tokens
        row[3] += u.cost or 0.0
    estimated = [e for e in ran if (e.estimate or {}).get("seconds")]
    ratios = sorted(e.wall_time / e.estimate["seconds"] for e in estimated)
    lines = [
        ("run wall time", f"{summary['elapsed']:.1f}s"),
        ("experiments", ", ".join(f"{n} {status}" for status, n in sorted(summary["counts"].items())) or "none"),
        ("sandbox time (sum over experiments)", f"{sum(e.wall_time for e in ran):.1f}s"),  # type: ignore[misc]
        ("largest peak memory", _size(max((e.peak_memory or 0) for e in experiments)) if experiments else ""),
        ("critic's time estimates", f"median actual/estimate {ratios[len(ratios) // 2]:.2f} over {len(ratios)} runs"
         if ratios else "none"),
        ("LLM calls", f"{len(usage)} ({sum(u.input_tokens for u in usage):,} input and "
                      f"{sum(u.output_tokens for u in usage):,} output tokens, ${board.llm_spend():.4f})"
         if usage else "none: the offline expert brain decided"),
    ]
    text = _table(["cost", "amount"], [[html.escape(a), html.escape(b)] for a, b in lines], css="costs")
    if by_role:
        text += _table(["role (model)", "calls", "input tokens", "output tokens", "US$"],
                       [[html.escape(k), str(v[0]), f"{v[1]:,}", f"{v[2]:,}", f"{v[3]:.4f}"] for k, v in by_role.items()],
                       css="costs")
    return text


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 24px; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; position: sticky; top: 0; }
.conversation td:last-child { white-space: pre-wrap; } .role { font-weight: 600; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #eee; }
.final { background: #f3f8ff; border-left: 4px solid #1f77b4; padding: 8px 12px; }
"""

_CLICK_SCRIPT = """
document.getElementById('crew-tree').on('plotly_click', function (event) {
  var id = event.points && event.points[0] && event.points[0].customdata;
  if (id) { window.open('experiments/' + id + '/code.py', '_blank'); }
});
"""


def report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the run's report (default `RUN_DIR/report.html`) and return its path."""
    run_dir = Path(run_dir)
    if not (run_dir / "blackboard.sqlite").exists():
        raise FileNotFoundError(f"{run_dir}: no blackboard.sqlite here; pass a run folder written by `crew solve`")
    board = Blackboard(run_dir / "blackboard.sqlite")
    experiments = board.experiments()
    summary = _summary(board, run_dir, experiments)
    messages = board.messages()
    start = _start(experiments, messages)
    higher = summary["higher_is_better"]
    kernel = summary["kind"] == "kernel"
    run_json = run_dir / "run.json"
    budget = json.loads(run_json.read_text(encoding="utf-8")).get("wall_time") if run_json.exists() else None
    figures = [("score", _score_figure(board, experiments, start, higher, budget, kernel)),
               ("tree", _tree_figure(experiments, higher)),
               ("timeline", _timeline_figure(messages, start))]
    divs = {name: fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"crew-{name}",
                              config={"displaylogo": False, "responsive": True}) for name, fig in figures}
    final = summary["final"]
    best = summary["best"]
    header = (f"<h1>crew run: {html.escape(summary['task'])}</h1><p class='sub'>{html.escape(str(run_dir))} · "
              f"{summary['status']} · {summary['elapsed']:.0f}s · {summary['experiments']} experiments · metric "
              f"{html.escape(str(summary['metric']))} ({'higher' if higher else 'lower'} is better) · best "
              f"{_fmt(best)}</p>")
    final_html = (f"<div class='final'><b>Final selection ({html.escape(str(final.get('kind', '')))}):</b> "
                  f"{html.escape(str(final.get('rationale', '')))}</div>") if final else \
        "<div class='final'>The run has not reached final selection (killed or still running).</div>"
    body = "\n".join([
        header, final_html, _final_model(final, experiments),
        "<h2>Score over time</h2>", divs["score"],
        "<h2>Experiment tree</h2>", divs["tree"],
        "<h2>Leaderboard</h2>", f"<div class='scroll'>{_leaderboard(experiments, higher, run_dir)}</div>",
        "<h2>Roles over time</h2>", divs["timeline"],
        "<h2>Conversation</h2>", f"<div class='scroll'>{_conversation(messages, start)}</div>",
        "<h2>Costs</h2>", _costs(board, experiments, summary),
    ])
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>crew report: "
            f"{html.escape(summary['task'])}</title><style>{_STYLE}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
            f"<body>{body}<script>{_CLICK_SCRIPT}</script></body></html>")
    target = Path(out) if out else run_dir / "report.html"
    target.write_text(page, encoding="utf-8")
    return target
