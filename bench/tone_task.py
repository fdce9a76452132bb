"""Writes a generated sound task: does the chirp in each one-second clip rise or fall? (the sound learning check)

Each clip (8 kHz WAV) holds one chirp of random start, length, base pitch
and sweep, under noise; only the direction of the sweep is the label, so a
model must read the spectrogram's shape over time (and test-time
augmentation must not play it backwards).

    python bench/tone_task.py --out /tmp/tone
    crew solve /tmp/tone/task.yaml --out /tmp/tonerun
    crew grade /tmp/tone/task.yaml /tmp/tonerun/submission.csv --answers /tmp/tone/grading/answers.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl
import soundfile


def write(out: Path, *, train: int = 600, test: int = 200, seed: int = 0) -> Path:
    """The task folder: task.yaml, train.csv and test.csv pointing into clips/, answers in grading/."""
    rng = np.random.default_rng(seed)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    (out / "grading").mkdir(exist_ok=True)
    rate = 8000
    t = np.arange(rate) / rate
    rows = []
    for i in range(train + test):
        label = ("rising", "falling")[i % 2]
        f0, span = rng.uniform(300, 1500), rng.uniform(300, 1200) * (1 if label == "rising" else -1)
        start, length = rng.uniform(0, 0.4), rng.uniform(0.3, 0.6)
        held = np.clip(t - start, 0, length)
        phase = 2 * np.pi * (f0 * held + span / (2 * length) * held**2)
        on = ((t >= start) & (t <= start + length)).astype(float)
        wave = 0.5 * on * np.sin(phase) + rng.normal(0, 0.15, t.size)
        name = f"clips/{i:05d}.wav"
        soundfile.write(out / name, wave.astype(np.float32), rate)
        rows.append({"id": i, "clip": name, "sweep": label})
    table = pl.DataFrame(rows)
    table.head(train).write_csv(out / "train.csv")
    table.tail(test).drop("sweep").write_csv(out / "test.csv")
    table.tail(test).select("id", "sweep").write_csv(out / "grading" / "answers.csv")
    (out / "task.yaml").write_text(
        "name: sweeps\ndescription: does each clip's chirp rise or fall? (generated)\n"
        "data: {train: train.csv, test: test.csv}\ntarget: sweep\nid_column: id\nmetric: accuracy\n"
        "media: {clip: audio}\nbudget: {wall_time: 3m, experiment_time: 2m}\n", encoding="utf-8")
    return out / "task.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.out, train=args.train, test=args.test, seed=args.seed))


if __name__ == "__main__":
    main()
