"""A token-normalisation task of any size (`kind: seq2seq`), to measure what a seq2seq run costs at scale.

    python bench/token_task.py --sentences 300000 --out /work/s2sbig       # about 2.1 million tokens
    /usr/bin/time -v crew solve /work/s2sbig/task.yaml --out /work/s2sbig/run
    crew grade /work/s2sbig/task.yaml /work/s2sbig/run/submission.csv --answers /work/s2sbig/grading/answers.csv

Sentences of 4 to 10 tokens: words drawn from a Zipf law over 30,000 (kept
as they are) and, one token in ten, a number below 100,000 written out in
English words by num2words. The last tenth of the sentences is the test set;
its answers go to `grading/`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from num2words import num2words


def write(out: Path, sentences: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 11, size=sentences)
    n = int(lengths.sum())
    sentence = np.repeat(np.arange(sentences), lengths)
    token = np.concatenate([np.arange(k) for k in lengths])
    vocabulary = np.array([f"w{i}" for i in range(30_000)])
    words = vocabulary[np.minimum(rng.zipf(1.3, size=n), 30_000) - 1]
    numbers = rng.integers(0, 100_000, size=n)
    is_number = rng.random(n) < 0.1
    spelt = {v: num2words(int(v)) for v in np.unique(numbers[is_number])}
    before = np.where(is_number, numbers.astype(str), words).astype(object)
    after = before.copy()
    after[is_number] = [spelt[v] for v in numbers[is_number]]
    frame = pd.DataFrame({"sentence_id": sentence, "token_id": token, "before": before, "after": after})
    frame["id"] = frame["sentence_id"].astype(str) + "_" + frame["token_id"].astype(str)
    cut = int(sentences * 0.9)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "grading").mkdir(exist_ok=True)
    frame[frame["sentence_id"] < cut].to_csv(out / "data" / "train.csv", index=False)
    test = frame[frame["sentence_id"] >= cut]
    test[["id", "sentence_id", "token_id", "before"]].to_csv(out / "data" / "test.csv", index=False)
    test[["id", "after"]].to_csv(out / "grading" / "answers.csv", index=False)
    (out / "task.yaml").write_text(
        "name: big-tokens\nkind: seq2seq\ndata:\n  train: data/train.csv\n  test: data/test.csv\nsource: before\n"
        "target: after\ngroup: sentence_id\nid_column: id\nmetric: accuracy\nbudget:\n  wall_time: 10m\n"
        "  memory: 8GiB\n", encoding="utf-8")
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=300_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{write(args.out, args.sentences, args.seed):,} tokens in {args.out}")


if __name__ == "__main__":
    main()
