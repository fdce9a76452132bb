"""Text tasks the bench generates: documents whose words carry the label the way real text does, for measuring
crew's text pipelines without a download.

    python bench/text_tasks.py OUT_DIR [--rows 4000] [--seed 0]

Writes two task folders under OUT_DIR, each with `task.yaml`, `data/` and
`grading/answers.csv`:

- `authors`: three "authors" writing sentences from one shared Zipf
  vocabulary, each with its own preferred words, word pairs and spelling
  habits (suffixes), scored by multi-class log loss (spooky-author-identification's
  shape);
- `reviews`: a binary sentiment task whose label depends on which cue words
  appear and on negations before them ("not good"), with a numeric column
  (the review's star count, noisy) beside the text, scored by ROC AUC.

Both are hard for a bag of single words alone: word pairs, character
n-grams and the numeric column each carry signal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "or", "an", "ith", "qua", "bel", "dor", "shi", "ne", "pra"]


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES, rng.integers(1, 4))))
    return sorted(words)


def _zipf(size: int) -> np.ndarray:
    p = 1.0 / np.arange(1, size + 1)
    return p / p.sum()


def authors(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.asarray(_vocabulary(rng, 3000))
    base = _zipf(len(vocab))
    names = ["EAP", "HPL", "MWS"]
    styles = []
    for k in range(3):
        p = base * np.exp(rng.normal(scale=0.6, size=len(vocab)))  # each author's preferred words
        styles.append((p / p.sum(), SYLLABLES[k * 3:k * 3 + 3], rng.choice(len(vocab), size=(40, 2))))
    texts, labels = [], []
    for _ in range(rows):
        k = int(rng.integers(0, 3))
        p, suffixes, pairs = styles[k]
        words = list(rng.choice(vocab, size=int(rng.integers(6, 30)), p=p))
        for _ in range(int(rng.poisson(1.0))):  # the author's habitual phrases
            a, b = pairs[rng.integers(0, len(pairs))]
            words.insert(int(rng.integers(0, len(words))), f"{vocab[a]} {vocab[b]}")
        words = [w + (rng.choice(suffixes) if rng.random() < 0.15 else "") for w in words]  # spelling habits
        texts.append(" ".join(words).capitalize() + rng.choice([".", ".", "!", "?", ";"]))
        labels.append(names[k])
    frame = pd.DataFrame({"id": [f"id{i:05d}" for i in range(rows)], "text": texts, "author": labels})
    _write(out / "authors", frame, "author", "log_loss", "Which author wrote each sentence.")


def reviews(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    vocab = np.asarray(_vocabulary(rng, 2000))
    good, bad = vocab[:25], vocab[25:50]
    base = _zipf(len(vocab) - 50)
    texts, labels, stars = [], [], []
    for _ in range(rows):
        positive = rng.random() < 0.4
        words = list(rng.choice(vocab[50:], size=int(rng.integers(10, 60)), p=base))
        for _ in range(int(rng.integers(1, 4))):
            cue_positive = rng.random() < (0.75 if positive else 0.25)
            negated = rng.random() < 0.3
            cue = rng.choice(good if cue_positive != negated else bad)
            words.insert(int(rng.integers(0, len(words))), f"not {cue}" if negated else str(cue))
        texts.append(" ".join(words))
        labels.append(int(positive))
        stars.append(float(np.clip(np.round(3 + (1.2 if positive else -1.2) + rng.normal(scale=1.5)), 1, 5)))
    frame = pd.DataFrame({"id": np.arange(rows), "review": texts, "stars": stars, "recommended": labels})
    _write(out / "reviews", frame, "recommended", "roc_auc", "Whether the reviewer recommends the product.")


def _write(folder: Path, frame: pd.DataFrame, target: str, metric: str, description: str) -> None:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "grading").mkdir(exist_ok=True)
    cut = int(len(frame) * 0.75)
    frame[:cut].to_csv(folder / "data" / "train.csv", index=False)
    frame[cut:].drop(columns=target).to_csv(folder / "data" / "test.csv", index=False)
    frame[cut:][["id", target]].to_csv(folder / "grading" / "answers.csv", index=False)
    (folder / "task.yaml").write_text(f"name: {folder.name}\ndescription: {description}\ndata:\n  train: data/train.csv\n"
                                      f"  test: data/test.csv\ntarget: {target}\nid_column: id\nmetric: {metric}\n"
                                      "budget:\n  wall_time: 2m\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    authors(args.out, args.rows, args.seed)
    reviews(args.out, args.rows, args.seed)
    return [args.out / "authors", args.out / "reviews"]


if __name__ == "__main__":
    for path in main():
        print(path)
