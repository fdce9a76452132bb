"""What goes into a sandbox run and what comes out: `Limits`, `Launch` and `Result` (plain, serialisable data that
the local, pooled and Ray executors all share)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Launch", "Limits", "Reason", "Result"]

Reason = Literal["ok", "error", "timeout", "memory", "disk", "killed"]


class Limits(BaseModel):
    """What one experiment may use; the sandbox enforces each while it runs."""

    wall_time: float = Field(default=120.0, gt=0)
    memory: int = Field(default=4 * 1024**3, gt=0)
    threads: int = Field(default=1, ge=1)
    max_processes: int = Field(default=256, ge=1)
    output_bytes: int = Field(default=512 * 1024**2, gt=0, description="largest file it may write, stdout included")
    disk: int = Field(default=4 * 1024**3, gt=0, description="bytes its work folder may hold on disk in all")
    max_files: int = Field(default=50_000, ge=16, description="files and folders its work folder may hold")
    tail_bytes: int = Field(default=8192, gt=0)


class Launch(BaseModel):
    """One experiment to run: its script, limits, where its data is, and paths it must not see."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    code: str
    limits: Limits = Field(default_factory=Limits)
    data_dir: str | None = None
    data_files: list[str] | None = Field(default=None, description="the only files of data_dir (relative paths) the "
                                         "experiment sees; None: all of data_dir but `hide`")
    data_sources: dict[str, str] = Field(default_factory=dict, description="data files served from elsewhere, "
                                         "relative name -> host path (a probe's perturbed copy of the train table)")
    hide: list[str] = Field(default_factory=list, description="paths made unreadable inside the sandbox (answers)")
    env: dict[str, str] = Field(default_factory=dict)
    gpus: list[int] = Field(default_factory=list)
    cpus: list[int] = Field(default_factory=list)
    shared_dir: str | None = Field(default=None, description="a folder the experiments of one run share (the stage "
                                   "cache), read-only to them, given as $CREW_SHARED")
    estimate: dict[str, Any] = Field(default_factory=dict, description="the critic's approved estimate (seconds, "
                                     "memory): what a cluster executor reserves for it")


class Result(BaseModel):
    """What happened: the reason it ended, exit status or signal, time, memory, output and the isolation it had."""

    id: str
    reason: Reason
    detail: str = ""
    exit_code: int | None = None
    signal: int | None = None
    wall_time: float
    cpu_time: float
    peak_memory: int | None
    stdout_tail: str = ""
    stderr_tail: str = ""
    files: dict[str, int] = Field(default_factory=dict)
    gpus: list[int] = Field(default_factory=list)
    isolation: dict[str, str] = Field(default_factory=dict)
    workdir: str
    lost: list[str] = Field(default_factory=list, description="workers lost under it before it ended (cluster "
                            "executors retry elsewhere)")
    audit: list[dict[str, str]] = Field(default_factory=list, description="what its audit hook saw at run time: "
                                        "{level: fail|warn|note, event, detail}, each once")
