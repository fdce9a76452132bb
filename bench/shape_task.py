"""Writes a generated image task whose label is the shape drawn (circle, square, triangle): the learning check.

Each image is a noisy background with one shape of random size, place,
colour and rotation, and a few distracting strokes; the colour says nothing
about the label, so only a model that sees shape scores well. A plain
gradient-boosted model on colour statistics stays near chance; a CNN that
learns reaches 95% and more. `bench/learning.py` times crew on it.

    python bench/shape_task.py --out /tmp/shapes --train 2000 --test 500
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def draw(rng: np.random.Generator, shape: str, size: int) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    for _ in range(3):  # distracting strokes
        xy = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
        pen.line(xy, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=1)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    while sum(abs(a - b) for a, b in zip(colour, background, strict=True)) < 150:
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    r = rng.uniform(0.15, 0.32) * size
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        corners = 4 if shape == "square" else 3
        turn = rng.uniform(0, 2 * math.pi)
        points = [(cx + r * math.cos(turn + 2 * math.pi * k / corners), cy + r * math.sin(turn + 2 * math.pi * k / corners))
                  for k in range(corners)]
        pen.polygon(points, fill=colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.normal(0, 12, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write(out: Path, *, train: int, test: int, size: int = 64, seed: int = 0) -> Path:
    """The task folder: task.yaml, train.csv and test.csv pointing into images/, answers in grading/."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "grading").mkdir(exist_ok=True)
    labels = rng.choice(SHAPES, train + test)
    rows = []
    for i, label in enumerate(labels):
        name = f"images/{i:06d}.png"
        draw(rng, str(label), size).save(out / name)
        rows.append({"id": i, "image": name, "shape": str(label)})
    table = pl.DataFrame(rows)
    table.head(train).write_csv(out / "train.csv")
    table.tail(test).drop("shape").write_csv(out / "test.csv")
    table.tail(test).select("id", "shape").write_csv(out / "grading" / "answers.csv")
    (out / "task.yaml").write_text(
        "name: shapes\n"
        "description: which shape is drawn in each image (generated; colour carries no signal)\n"
        "data: {train: train.csv, test: test.csv}\n"
        "target: shape\nid_column: id\nmetric: accuracy\nmedia: {image: image}\n"
        "budget: {wall_time: 5m, experiment_time: 4m}\n", encoding="utf-8")
    return out / "task.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.out, train=args.train, test=args.test, size=args.size, seed=args.seed))


if __name__ == "__main__":
    main()
