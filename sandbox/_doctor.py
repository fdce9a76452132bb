"""`crew doctor`: what isolation each limit really gets on this machine, the GPUs seen, cores and memory."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.table import Table

from crew.sandbox._gpu import NVML
from crew.sandbox._local import confinement

__all__ = ["machine_report", "register"]


def _gpus() -> list[str]:
    """The GPUs as the pool's slots will see them (the same NVML layer), with their free memory now."""
    nvml = NVML()
    found = [f"{d.index}: {d.name}, {d.free_memory / 1024**3:.1f} of {d.total_memory / 1024**3:.1f} GiB free"
             for d in nvml.devices()]
    return found or [f"none ({nvml.error})" if nvml.error else "none"]


def _memory() -> str:
    fields = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) * 1024
    return f"{fields['MemTotal'] / 1024**3:.1f} GiB total, {fields.get('MemAvailable', 0) / 1024**3:.1f} GiB available"


def machine_report() -> dict[str, str]:
    """Isolation as observed by running a real (empty) experiment, not as assumed."""
    seen = confinement()
    launch = seen.pop("launch")
    report = {f"isolation: {key}": value for key, value in seen.items()}
    report["isolation: wall time"] = "process tree killed by the executor (cgroup, pid namespace, process group)"
    if seen["confined"] != "yes":
        report["WARNING"] = ("experiments here can see the host: `crew solve` refuses a chat model's code unless "
                             "you pass --allow-unconfined")
    report["launch check"] = launch
    report["cores"] = f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable by this process)"
    report["memory"] = _memory()
    report["gpus"] = "; ".join(_gpus())
    return report


def register(app: typer.Typer) -> None:
    """Add `crew doctor` to the command line (found through the `crew.commands` entry point)."""

    @app.command()
    def doctor() -> None:
        """Print which isolation each experiment limit has here, the GPUs seen, the cores and memory."""
        table = Table(title="crew doctor", show_header=False)
        for key, value in machine_report().items():
            table.add_row(key, value)
        Console(soft_wrap=True).print(table)
