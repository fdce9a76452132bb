"""What text features cost: the measurements behind the critic's text priors (`crew.tools.cost`, `_text_cost`).

    python bench/text_tasks.py --out /work/textbench      # once: the two generated text tasks
    python bench/text_cost.py --tasks /work/textbench [--out bench/text-cost.json]

For 1,000 and 4,000 train rows of each task it times, on one thread, what an
experiment does with text: word (1-2) and character (2-5) n-gram TF-IDF
fitted on train and applied to train and test (seconds per character read),
a logistic regression on them (seconds per non-zero, and non-zeros per
character), and the 5,000-term word TF-IDF reduced to 32 SVD components of
`text_tfidf` (seconds per character).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from crew import Task, read_table

TEXT = {"authors": "text", "reviews": "review"}


def measure(task_dir: Path, column: str, rows: int) -> dict[str, float]:
    task = Task.load(task_dir / "task.yaml")
    assert task.data is not None and task.target is not None
    train, test = read_table(task.path(task.data.train)), read_table(task.path(task.data.test))
    x, y, x_test = train[column].head(rows).to_list(), train[task.target].head(rows).to_list(), test[column].to_list()
    chars = sum(map(len, x)) + sum(map(len, x_test))
    started = time.perf_counter()
    words = TfidfVectorizer(ngram_range=(1, 2), max_features=50_000, sublinear_tf=True).fit(x)
    grams = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), max_features=50_000, sublinear_tf=True).fit(x)
    matrix = sp.hstack([words.transform(x), grams.transform(x)]).tocsr()
    sp.hstack([words.transform(x_test), grams.transform(x_test)])
    ngrams = time.perf_counter() - started
    started = time.perf_counter()
    LogisticRegression(C=4.0, max_iter=1000).fit(matrix, y)
    fit = time.perf_counter() - started
    started = time.perf_counter()
    svd_input = TfidfVectorizer(max_features=5000, ngram_range=(1, 2), sublinear_tf=True).fit_transform(x + x_test)
    TruncatedSVD(32, random_state=0).fit_transform(svd_input)
    svd = time.perf_counter() - started
    return {"rows": rows, "chars": chars, "ngram_seconds_per_char": ngrams / chars,
            "nonzeros_per_char": matrix.nnz / sum(map(len, x)), "fit_seconds_per_nonzero": fit / matrix.nnz,
            "svd_seconds_per_char": svd / chars}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=Path, required=True, help="the folder bench/text_tasks.py wrote")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [{"task": name, **measure(args.tasks / name, column, n)} for name, column in TEXT.items()
            for n in (1000, 4000)]
    for row in rows:
        print(json.dumps({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in row.items()}))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
