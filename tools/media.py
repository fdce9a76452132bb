"""crew's side of a media task's array store: its name for a task and image size, and sharing an experiment's.

An experiment (`crew.tools.vision`) decodes every file once into one
uint8 array and leaves it in its own folder; it cannot write the run's
shared folder. crew shares it with later experiments only after checking
it: the name must be the digest of these files at this size, the shape and
type right, and a sample of rows must decode, here, to the same arrays.
Later experiments then skip decoding, and the critic prices them so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from crew import Task
from crew.tools import vision
from crew.tools.artifacts import file_stamp, read_columns

__all__ = ["SAMPLE", "media_paths", "media_store_cached", "share_model", "share_store", "store_name"]

SAMPLE = 4
"""Rows of a new store that crew decodes itself and compares before sharing it."""


def media_paths(task: Task) -> tuple[str, str, list[str]]:
    """(media column, kind, every train then test row's path), in the order an experiment stacks them."""
    assert task.media and task.data is not None
    column, kind = next(iter(task.media.items()))
    paths = [str(p) for table in (task.data.train, task.data.test)
             for p in read_columns(file_stamp(task.path(table)), (column,))[column].to_list()]
    return column, kind, paths


_NAMES: dict[tuple[object, ...], str] = {}


def store_name(task: Task, size: int) -> str:
    """The file name an experiment gives the store of this task's files at `size` (their paths, sizes and times).
    Remembered per task tables and media folders as they stand (their times): the critic asks before every launch,
    and 200,000 files would be stat-ed each time. A file rewritten in place under an unchanged folder keeps the name
    remembered: the experiment, which names the store afresh, then decodes, and only the critic's price is off."""
    _, kind, paths = media_paths(task)
    assert task.data is not None
    folders = sorted({os.path.dirname(p) for p in paths})
    key = (str(task.root), size, kind, file_stamp(task.path(task.data.train)), file_stamp(task.path(task.data.test)),
           tuple((f, os.stat(task.path(f) if f else task.root).st_mtime_ns) for f in folders))
    if key not in _NAMES:
        _NAMES[key] = _named(task, paths, size, kind)
    return _NAMES[key]


def _named(task: Task, paths: list[str], size: int, kind: str) -> str:
    return f"media-{vision.store_key(str(task.root), paths, size, kind)}.npy"


def media_store_cached(task: Task, size: int, folder: Path) -> bool:
    """Whether the run's shared `folder` holds a checked store of the task's files at `size`."""
    return folder.is_dir() and any(folder.glob("media-*.npy")) and (folder / store_name(task, size)).is_file()


def share_store(task: Task, workdir: Path, size: int, folder: Path) -> str | None:
    """Copy the store experiment `workdir` decoded into the shared `folder` once it checks out; its name, or None
    (none left, already shared, or it does not check out: later experiments then decode for themselves)."""
    _, kind, paths = media_paths(task)
    name = _named(task, paths, size, kind)
    source, target = workdir / "store" / name, folder / name
    if target.exists() or not source.is_file() or source.is_symlink():
        return None
    try:
        arrays = np.load(source, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arrays.dtype != np.uint8 or arrays.shape != (len(paths), size, size, 3 if kind == "image" else 1):
        return None
    rng = np.random.default_rng(len(paths))
    for row in rng.choice(len(paths), size=min(SAMPLE, len(paths)), replace=False):
        if not np.array_equal(arrays[row], vision.decode(str(task.path(paths[row])), size, kind)):
            return None
    staging = target.with_suffix(f".{os.getpid()}.partial")
    shutil.copyfile(source, staging, follow_symlinks=False)
    staging.replace(target)
    return name


def share_model(workdir: Path, folder: Path, name: str) -> str | None:
    """Copy the network experiment `workdir` saved (model/config.json and weights.pt) into the shared `folder`
    as models/`name`, once its weights load (tensors only) into the network its config names; the path relative to
    `folder`, or None. A later experiment predicts with it without training it again (test-time augmentation)."""
    import json

    import torch

    source, target = workdir / "model", folder / "models" / name
    if target.exists() or not (source / "weights.pt").is_file() or not (source / "config.json").is_file():
        return None
    try:
        saved = json.loads((source / "config.json").read_text(encoding="utf-8"))
        outputs = 1 if saved["task"]["target_type"] == "regression" else len(saved["task"]["classes"])
        net = vision.build_network({**saved["config"], "weights": None}, int(saved["in_channels"]), outputs)
        net.load_state_dict(torch.load(source / "weights.pt", map_location="cpu", weights_only=True))
    except Exception:  # unreadable, foreign or tampered: later experiments train their own
        return None
    staging = target.with_name(f".{name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in ("config.json", "weights.pt"):
        shutil.copyfile(source / file, staging / file, follow_symlinks=False)
    staging.rename(target)
    return f"models/{name}"
