"""The `see` workflow for tasks whose rows are images or sounds (a task's `media` columns).

A LangGraph `StateGraph` like the seq2seq one: the safety net first (the
commonest class, or the mean, for every test row), then the offline
expert's ladder (`LADDER`), each rung a `crew.tools.vision` experiment
priced by the critic (epochs x images x pixels, calibrated by the epochs
earlier experiments timed), run in the sandbox (on a GPU slot when the
machine has one and the task allows it), checked by the reviewer's audit
(the held-out score recomputed from oof.csv, the submission against the
test ids) and recorded on the blackboard. After every experiment the
submission holds the best held-out score so far; `--resume` skips the rungs
already run. The first experiment to decode the media leaves an array store
that crew checks (a sample of rows decoded again) and shares with the rest.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from langgraph.runtime import Runtime

from crew import Blackboard, Brain, Budget, Experiment, Message, Task, best_first, read_table
from crew.sandbox import GPUSlots, GPUSource
from crew.tools import denoise, vision
from crew.tools.artifacts import file_stamp, read_columns
from crew.tools.media import share_model, share_store
from crew.tools.pipelines import TaskInfo, score_source, shared_functions
from crew.tools.review import audit, audit_pixels
from crew.workflows._run import (
    INTERRUPTED,
    fill_constants,
    keep_best_model,
    keep_if_better,
    ladder_graph,
    mark_interrupted,
    record_final,
    remaining,
    stream_ladder,
)
from crew.workflows.experiment import RunContext, launch
from crew.workflows.final import constant_submission

__all__ = ["DENOISE_LADDER", "LADDER", "MediaContext", "MediaState", "build_media_graph", "gpu_allowed", "joint_script",
           "local_weights", "script_for", "see"]

LADDER: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("boosted", {"model": "boosted", "image_size": 32}),
    ("cnn", {"model": "cnn", "epochs": 20, "lr": 0.003, "batch": 64}),
    ("pretrained", {"model": "resnet18", "epochs": 8, "lr": 0.001, "batch": 64}),
    ("tta", {"tta": True}),
)
"""The expert's experiments, in order: a boosted baseline on each file's summary statistics; a compact CNN from
scratch; a pretrained ResNet-18 fine-tuned (only when its weights are on the machine); and the better network, as it
was trained (crew shares it), predicting with test-time augmentation (flips averaged; time shifts for sound)."""

DENOISE_LADDER: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("pixels", {"model": "boosted", "radius": 3, "sample": 200000, "estimators": 800}),
    ("denoiser", {"model": "denoiser", "epochs": 200, "patches": 512, "patch": 48, "batch": 16, "lr": 0.002,
                  "width": 32}),
)
"""An image target's experiments (`crew.tools.denoise`): LightGBM on each pixel's neighbourhood, then a dilated
convolutional denoiser trained on crops. Trees and epochs are generous: the critic cuts them to the time an
experiment has (the denoiser's 200 epochs take seconds on a GPU; about 25 fit in two minutes on 2 cores)."""

LADDER_NOTES = {"boosted": "LightGBM on colour moments, a thumbnail and edge energy of each file",
                "pixels": "LightGBM on each pixel's 7 x 7 window, its local background and the page's levels",
                "denoiser": "a dilated convolutional denoiser trained on random crops, predicting whole pages",
                "cnn": "a compact CNN trained from scratch with flips and shifted crops",
                "pretrained": "ResNet-18 from local torchvision weights, fine-tuned",
                "tta": "the better network as trained, predicting with flips (time shifts for sound) averaged"}

_MIN_GPU_MEMORY = 1024**3
"""A GPU with less than this free takes no network: it trains on the CPU instead (the CUDA context alone is ~0.5 GiB)."""
_WEIGHTS = {"resnet18": "resnet18-*.pth", "resnet34": "resnet34-*.pth"}
"""torchvision's checkpoint names in its hub cache, per network crew can build."""


class MediaState(TypedDict, total=False):
    task: str
    blackboard: str
    proposal: dict
    remaining: dict
    verdict: dict
    final: dict
    stage_cache: str


@dataclass
class MediaContext(RunContext):
    """A media run: the GPU slots its experiments are placed on (default: real NVML, looked at on first use)."""

    gpu_slots: GPUSlots = field(default_factory=GPUSlots)


def torch_cache() -> Path:
    """torchvision's checkpoint folder, as torch.hub resolves it ($TORCH_HOME, else $XDG_CACHE_HOME/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                        os.path.expanduser("~/.cache"), "torch")
    return Path(home) / "hub" / "checkpoints"


def local_weights(network: str = "resnet18") -> Path | None:
    """A checkpoint of `network` already in torchvision's local cache that loads into crew's network, or None.
    Nothing is downloaded: a machine without the file trains from scratch."""
    folder = torch_cache()
    for path in sorted(folder.glob(_WEIGHTS[network])) if folder.is_dir() else []:
        try:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
            vision.resnet(network, 3, 1000).load_state_dict(state)
        except Exception:  # a torn or foreign file is not a checkpoint of this network
            continue
        return path
    return None


def script_for(task: Task, config: Mapping[str, Any]) -> str:
    """The experiment's code.py: `crew.tools.vision` with the task and `config` filled in, and the tabular script's
    label, metric and submission functions added (for several labels, the joint network's: `crew.tools.multioutput`'s
    per-column `score`)."""
    assert task.media and task.data is not None
    if task.image_target is not None:  # image in, image out: the per-pixel script, which scores itself
        assert task.submission is not None
        spec = {"train": task.data.train, "test": task.data.test, "id_column": task.id_column,
                "media": task.image_source, "target": task.image_target, "metric": task.metric,
                "key": task.submission.key, "value": task.submission.value, "format": task.submission.format}
        common = {k: v for k, v in denoise.CONFIG.items() if k in denoise.COMMON}
        return fill_constants(Path(denoise.__file__).read_text(encoding="utf-8"),
                              {"TASK": spec, "CONFIG": {**common, **config}})
    column, kind = next(iter(task.media.items()))
    if task.targets:  # several labels: one network with a sigmoid per label, scored per column
        import inspect

        from crew.tools import multioutput

        labels: dict[str, Any] = {
            "train": task.data.train, "test": task.data.test, "target": None, "targets": list(task.targets),
            "id_column": task.id_column, "metric": task.metric_info.per_column,
            "higher_is_better": task.metric_info.higher_is_better, "target_type": "multilabel", "classes": None,
            "positive": None, "submission": None, "nonnegative": False, "media": column, "kind": kind}
        source = fill_constants(Path(vision.__file__).read_text(encoding="utf-8"),
                                {"TASK": labels, "CONFIG": {**vision.CONFIG, **config}})
        head, guard, tail = source.rpartition('\n\nif __name__ == "__main__":')
        return f"{head}\n\n\n{inspect.getsource(multioutput.score)}\n{guard}{tail}"
    info = TaskInfo.from_task(task)
    spec = {**info.model_dump(include={"train", "test", "target", "id_column", "metric", "higher_is_better",
                                       "target_type", "classes", "positive", "submission", "nonnegative"}),
            "media": column, "kind": kind}
    source = fill_constants(Path(vision.__file__).read_text(encoding="utf-8"),
                            {"TASK": spec, "CONFIG": {**vision.CONFIG, **config}})
    shared = "\n\n\n".join([score_source(info), shared_functions("canonical", "submission_frame", "raw_frame")])
    head, guard, tail = source.rpartition('\n\nif __name__ == "__main__":')
    return f"{head}\n\n\n{shared}\n{guard}{tail}"


def joint_script(task: Task, *, time_limit: float, seed: int = 0) -> str:
    """A several-label task's joint network (`crew.workflows.columns` runs it before the columns' own runs): the
    ladder's compact CNN with a sigmoid per label, trained for at most `time_limit` seconds."""
    config = {**dict(LADDER)["cnn"], "image_size": _image_size(task), "seed": seed, "time_limit": round(time_limit, 1)}
    return script_for(task, config)


def _image_size(task: Task) -> int:
    """The side images are resized to: their typical short side (of a sample), rounded to 16, within 32..96;
    spectrograms are 64 x 64."""
    column, kind = next(iter((task.media or {}).items()))
    if kind != "image":
        return 64
    from PIL import Image

    assert task.data is not None
    paths = read_columns(file_stamp(task.path(task.data.train)), (column,))[column].head(25).to_list()
    sides = []
    for rel in paths:
        try:
            with Image.open(task.path(str(rel))) as image:
                # a page is cleaned at its own size: its typical side is what the critic prices a pass by
                sides.append(math.sqrt(image.size[0] * image.size[1]) if task.image_target else min(image.size))
        except OSError:
            continue
    side = statistics.median(sides) if sides else 64
    if task.image_target:
        return max(1, round(side))
    return int(min(96, max(32, round(side / 16) * 16)))


def _dirty_pages(task: Task, path: Path) -> None:
    """An image target's safety net: every test page as it is (each pixel its input's grey level)."""
    import polars as pl

    assert task.data is not None and task.image_source is not None
    test = read_table(task.path(task.data.test))
    assert task.submission is not None and task.id_column
    spec = {"key": task.submission.key, "value": task.submission.value, "format": task.submission.format}
    pages = [denoise.grey(str(task.root), rel) for rel in test[task.image_source].cast(pl.Utf8).to_list()]
    frame = denoise.pixel_frame(test[task.id_column].to_list(), pages, task=spec)
    frame.write_csv(path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def _setup(state: MediaState, runtime: Runtime[MediaContext]) -> dict[str, Any]:
    """The safety net (the constant model: class priors or the train mean, as a tabular run's), the image size and
    the local weights the ladder uses."""
    context = MediaContext.of(runtime)
    task, board = context.task, context.blackboard
    context.stage_cache.mkdir(parents=True, exist_ok=True)
    if not context.output.exists() and task.image_target:
        _dirty_pages(task, context.output)
        board.post(Message(content=f"wrote the dirty test pages, unchanged, to {task.output_name} as a safety net",
                           sent_from="workflow", cause_by="workflow.submission"))
    elif not context.output.exists():
        constant_submission(task, context.output)
        board.post(Message(content=f"wrote a constant-prediction {task.output_name} as a safety net",
                           sent_from="workflow", cause_by="workflow.submission"))
    if board.get_meta("image_size") is None:
        board.set_meta("image_size", _image_size(task))
    if board.get_meta("weights", "unread") == "unread" and not task.image_target:  # no backbone cleans a page
        weights = local_weights()
        board.set_meta("weights", str(weights) if weights else None)
        board.post(Message(content=(f"pretrained weights found in the local torchvision cache: {weights}" if weights
                                    else f"no pretrained weights in {torch_cache()}: networks train from scratch "
                                         "(nothing is downloaded)"), sent_from="workflow", cause_by="workflow.weights"))
    return {"task": str(task.root / "task.yaml"), "stage_cache": str(context.stage_cache)}


def _shared_weights(context: MediaContext) -> str | None:
    """The local checkpoint copied into the run's shared folder (where an experiment can read it), relative to it."""
    source = context.blackboard.get_meta("weights")
    if not source or not Path(source).is_file():
        return None
    target = context.stage_cache / "weights" / Path(source).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target.with_suffix(".partial"))
        target.with_suffix(".partial").replace(target)
    return f"weights/{target.name}"


def _config(name: str, base: Mapping[str, Any], context: MediaContext) -> dict[str, Any] | None:
    """A rung's CONFIG for this run, or None when the rung does not apply (no weights; no network finished)."""
    board = context.blackboard
    config = {**base, "seed": context.seed}
    if context.task.image_target:  # a page is cleaned at its own size; its typical side prices a pass over it
        return {**config, "page_side": board.get_meta("image_size") or 64}
    config.setdefault("image_size", board.get_meta("image_size") or 64)
    if name == "pretrained":
        weights = _shared_weights(context)
        if weights is None:
            return None
        config["weights"] = weights
    if name == "tta":
        networks = [e for e in board.experiments(status="done") if e.spec.get("model") not in (None, "boosted")]
        if not networks:
            return None
        best = best_first(networks, context.task.metric_info.higher_is_better)[0]
        if not (context.stage_cache / "models" / best.id).is_dir():
            return None
        config = {**best.spec, **base, "init": f"models/{best.id}", "epochs": 0}  # predict only
    return config


def _modeler(state: MediaState, runtime: Runtime[MediaContext]) -> dict[str, Any]:
    """The next rung of the ladder not yet on the blackboard, or stop when none is left or the time is spent."""
    context = MediaContext.of(runtime)
    board, budget = context.blackboard, context.budget
    tried = {e.insights[0] for e in board.experiments() if e.insights and e.status in ("done", "failed", "rejected")
             and e.error != INTERRUPTED}
    left = budget.remaining()
    for name, base in DENOISE_LADDER if context.task.image_target else LADDER:
        if name in tried:
            continue
        if left.wall_time - context.reserve < 5.0 or left.experiments <= 0:
            break
        config = _config(name, base, context)
        if config is None:
            continue
        if config["model"] != "boosted" and importlib.util.find_spec("torch") is None:
            if not board.get_meta("no_torch"):
                board.set_meta("no_torch", True)
                board.post(Message(content="PyTorch is not installed (pip install 'crew[vision]'): no network is "
                                           "trained", sent_from="modeler", cause_by="modeler.note"))
            continue
        allowed = max(5.0, min(left.experiment_time, left.wall_time - context.reserve) * 0.9)
        config["time_limit"] = round(allowed, 1)
        exp = board.add_experiment(Experiment(insights=[name], stage="model", spec=dict(config),
                                              code=script_for(context.task, config)))
        board.post(Message(content=f"{exp.id}: {name} ({LADDER_NOTES[name]})", sent_from="modeler",
                           send_to=["critic"], cause_by="modeler.proposal",
                           payload={"experiment": exp.id, "config": dict(config)}))
        gpus = 1 if _wants_gpu(context) and config["model"] != "boosted" else 0
        left_now = remaining(budget, context.reserve)
        free = max(context.gpu_slots.available().values(), default=0) if gpus else 0
        if gpus and free < _MIN_GPU_MEMORY:
            gpus = 0
            board.post(Message(content=f"no GPU has {_MIN_GPU_MEMORY / 1024**3:.0f} GiB free ({free / 1024**3:.2f} GiB "
                                       "at most): it runs on the CPU", sent_from="modeler", cause_by="modeler.gpu"))
        if gpus:  # what the largest free slot holds: the critic fits the network to it
            left_now["gpu_memory"] = free
        return {"proposal": {"id": exp.id, "name": name, "code": exp.code, "insights": [name],
                             "threads": context.threads, "gpus": gpus}, "remaining": left_now}
    return {"proposal": {"stop": True}}


def gpu_allowed(task: Task) -> bool:
    """Whether a task's networks may use a GPU: it allows one (`budget.gpus`), or says nothing of GPUs (a media task
    that does not say may use the machine's; `gpus: 0` keeps it off)."""
    return task.budget.gpus > 0 or "gpus" not in task.budget.model_fields_set


def _wants_gpu(context: MediaContext) -> bool:
    """A network asks for a GPU when the run's budget allows one and the machine has one."""
    return context.budget.gpus > 0 and bool(context.gpu_slots.devices())


def _run(state: MediaState, runtime: Runtime[MediaContext]) -> dict[str, Any]:
    """Run the proposal (on a GPU slot when it asks for one and one fits), audit it, keep the best submission."""
    context = MediaContext.of(runtime)
    board, task = context.blackboard, context.task
    exp_id, verdict = state["proposal"]["id"], state["verdict"]
    if verdict["verdict"] == "reject":  # the critic marked it rejected, with its reason, on the blackboard
        context.record_elapsed()
        return {}
    estimate = verdict.get("estimate") or {}
    wanted = int(state["proposal"].get("gpus") or 0)
    memory = int(estimate.get("gpu_memory") or 0)
    with context.gpu_slots.hold(wanted, memory) as gpus:
        if wanted and not gpus:
            board.post(Message(content=f"{exp_id}: no GPU has {memory / 1024**3:.1f} GiB free: it runs on the CPU",
                               sent_from="workflow", cause_by="workflow.gpu"))
        result = launch(context, exp_id, verdict["code"], estimate=estimate, gpus=gpus or [])
    workdir = Path(result.get("workdir") or context.run_dir / "experiments" / exp_id)
    review = (audit_pixels if task.image_target else audit)(task, {**result, "workdir": str(workdir)})
    if review.failures or review.score is None:
        problem = "; ".join(review.failures) or "no held-out score"
        board.update_experiment(exp_id, status="failed", error=(problem + "\n" + result.get("stderr_tail", ""))[:4000])
        board.post(Message(content=f"{exp_id}: failed ({problem[:300]})", sent_from="reviewer",
                           cause_by="reviewer.verdict", payload={"experiment": exp_id, "valid": False}))
        context.record_elapsed()
        return {}
    metrics = json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))
    score = float(review.score)
    board.update_experiment(exp_id, status="done", score=score, metrics=metrics, cv_folds=[score],
                            artifacts={"predictions": str(workdir / "predictions.csv")})
    shared = None if task.image_target else share_store(task, workdir, int(metrics.get("image_size") or 0),
                                                         context.stage_cache)
    if metrics.get("epochs") and not task.image_target:  # a network trained here: shared, so that test-time
        # augmentation need not retrain it
        share_model(workdir, context.stage_cache, exp_id)
    improved = keep_if_better(context, exp_id, score, workdir / "predictions.csv",
                              higher_is_better=task.metric_info.higher_is_better)
    epochs = metrics.get("epochs") or []
    detail = (f"{len(epochs)} epochs of {metrics.get('epoch_seconds')}s on {metrics.get('device')}" if epochs
              else f"on {metrics.get('device', 'cpu')}")
    board.post(Message(content=f"{exp_id}: held-out {task.metric} {score:.5f} ({detail})"
                               + (f"; decoded files shared as {shared}" if shared else "")
                               + ("; now the submission" if improved else ""),
                       sent_from="reviewer", cause_by="reviewer.verdict",
                       payload={"experiment": exp_id, "valid": True, "cv": score, "improved": improved,
                                "warnings": review.warnings}))
    context.record_elapsed()
    return {}


def _finalize(state: MediaState, runtime: Runtime[MediaContext]) -> dict[str, Any]:
    from crew.tools.predictor import save_media_predictor

    context = MediaContext.of(runtime)
    kept = keep_best_model(context, save_media_predictor)
    final: dict[str, Any]
    if kept is None:
        final = {"kind": "constant", "cv": None, "rationale": "no experiment finished: the safety net stays"}
    else:
        exp, cv, saved = kept
        final = {"kind": "media", "experiment": exp.id, "insights": exp.insights, "cv": cv,
                 "model": exp.spec.get("model"), "device": exp.metrics.get("device"), "predictor": saved,
                 "rationale": f"{exp.insights[0]}: best held-out {context.task.metric} {cv:.5f} of "
                              f"{len(context.blackboard.experiments())} experiment(s)"}
    return record_final(context, final)


def build_media_graph() -> Any:
    """The media graph, compiled: invoke it with `context=MediaContext(...)` (what `see` does)."""
    return ladder_graph(MediaState, MediaContext, setup=_setup, modeler=_modeler, run=_run, finalize=_finalize)


def see(task: Task, run_dir: Path, *, board: Blackboard, budget: Budget,
        brain: Brain | Mapping[str, Brain] | None = None, executor: Any = None, seed: int = 0,
        gpu_slots: GPUSlots | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the media graph to the end and return the final choice. A resumed run starts the graph again: the
    blackboard says which rungs already ran, and the submission already holds the best of them. Networks are placed
    on `gpu_slots`, by default the GPUs the executor lists (a Ray cluster's), else this machine's."""
    if gpu_slots is None:
        gpu_slots = GPUSlots(nvml=executor if isinstance(executor, GPUSource) else None)
    context = MediaContext(task=task, run_dir=run_dir, blackboard=board, budget=budget, executor=executor,
                           brain=brain, seed=seed, gpu_slots=gpu_slots)
    mark_interrupted(board)  # what a killed run left running: its rung is proposed again
    if budget.gpus == 0 and gpu_allowed(task) and context.gpu_slots.devices():
        budget.gpus = 1  # a media task that does not say may use the machine's GPU
        board.post(Message(content="the machine has a GPU and the task sets no budget.gpus: networks may use one",
                           sent_from="workflow", cause_by="workflow.gpu"))
    graph = build_media_graph()
    start = {"task": str(task.root / "task.yaml"), "blackboard": str(board.path)}
    stream_ladder(graph, start, context, on_event)
    return board.get_meta("final") or {}
