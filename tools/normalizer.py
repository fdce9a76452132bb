"""The experiment script of a seq2seq task (`kind: seq2seq`): each token's output learnt from train, with fall-backs.

crew runs a copy of this file as an experiment's `code.py`, its `TASK` and
`CONFIG` filled in (`script_for`); it reads only the task's train and test
tables. What a Kaggle expert does first on a token-normalisation task: the
output a token had most often in train, in its context (the tokens either
side) when that context was seen often enough, else alone; a token never
seen gets the transformation that tokens of its shape (letters, digits,
punctuation) most often had in train, chosen by exact matches: unchanged,
lower-cased, spelt letter by letter, or a number spelt out in words by
num2words in the language the train outputs are written in; else it is
copied unchanged. Validation holds out whole groups (sentences).
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pandas as pd

TASK: dict = {"train": "train.csv", "test": "test.csv", "source": "before", "target": "after", "id_column": "id",
              "group": None}
CONFIG: dict = {"context": False, "min_context": 2, "shapes": False, "holdout": 0.1, "seed": 0}

LANGUAGES = ("en", "ru", "de", "fr", "es", "it", "pt", "nl", "pl", "uk", "cs", "sv", "da", "fi", "tr")
"""Languages num2words spells numbers in, tried against the train outputs of numeric tokens."""


def read(path):
    """A table with its text exactly as written (a token "1.0" stays "1.0"; an empty field is an empty string)."""
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load():
    root = os.environ.get("CREW_DATA", ".")
    train = read(os.path.join(root, TASK["train"]))
    test = read(os.path.join(root, TASK["test"]))
    for frame in (train, test):
        for column in (TASK["source"], TASK["target"], TASK["group"]):
            if column and column in frame.columns:
                frame[column] = frame[column].fillna("").astype(str)
    return train, test


def shape(token):
    """A token's shape: letters as a/A, digits as 9, runs collapsed ("Ab12," -> "Aa9,")."""
    out = re.sub(r"[^\W\d_]", lambda m: "A" if m.group().isupper() else "a", token)
    out = re.sub(r"\d", "9", out)
    return re.sub(r"(.)\1+", r"\1", out)


def with_context(frame, task=None):
    """`prev` and `next`: the source tokens either side within the row's group (empty at a group's ends). `task`:
    another TASK (a saved model's)."""
    task = task or TASK
    source, group = frame[task["source"]], task["group"]
    if group and group in frame.columns:
        keys = frame[group]
        prev, nxt = source.groupby(keys, sort=False).shift(1), source.groupby(keys, sort=False).shift(-1)
    else:
        prev, nxt = source.shift(1), source.shift(-1)
    return frame.assign(prev=prev.fillna("<s>"), next=nxt.fillna("</s>"))


def most_frequent(train, keys):
    """For each distinct `keys`, the target seen most often with it (ties: first seen) and how often."""
    counts = train.groupby([*keys, TASK["target"]], sort=False).size().reset_index(name="n")
    total = counts.groupby(keys, sort=False)["n"].transform("sum")
    counts = counts.assign(total=total).sort_values("n", ascending=False, kind="stable")
    return counts.drop_duplicates(keys)


def _spell_number(token, lang, to):
    from num2words import num2words

    digits = token.replace(",", "")
    if not re.fullmatch(r"-?\d+(\.\d+)?", digits) or len(digits) > 15:
        return None
    try:
        return num2words(float(digits) if "." in digits else int(digits), lang=lang, to=to)
    except (NotImplementedError, OverflowError, ValueError, TypeError, KeyError, IndexError):
        # NotImplementedError: num2words has no converter of this kind for the language; the others: a number it
        # cannot spell. Either way the token has no spelling here and the caller tries the next fall-back.
        return None


def transforms(lang):
    """The fall-backs a shape may learn, by name: each maps a token to its output, or None where it cannot."""
    out = {"unchanged": lambda t: t, "lower": str.lower,
           "letters": lambda t: " ".join(t.lower()) if t.isalpha() and len(t) > 1 else None}
    if lang:
        out["cardinal"] = lambda t: _spell_number(t, lang, "cardinal")
        out["ordinal"] = lambda t: _spell_number(t, lang, "ordinal")
        out["year"] = lambda t: _spell_number(t, lang, "year")
        out["digits"] = lambda t: (" ".join(_spell_number(d, lang, "cardinal") or "" for d in t)
                                   if t.isdigit() else None)
    return out


def language(train, sample=2000):
    """The language num2words spells train's numbers in most often (None: none of them, or no numbers)."""
    numbers = train[train[TASK["source"]].str.fullmatch(r"\d{1,6}")]
    numbers = numbers.sample(min(sample, len(numbers)), random_state=0) if len(numbers) else numbers
    best, hits = None, 0
    for lang in LANGUAGES:
        found = sum(_spell_number(s, lang, "cardinal") == t for s, t in
                    zip(numbers[TASK["source"]], numbers[TASK["target"]], strict=True))
        if found > hits:
            best, hits = lang, found
    return best if hits >= max(3, 0.05 * len(numbers)) else None


def learn_shapes(train, lang, per_shape=300):
    """For each shape, the fall-back with the most exact matches on up to `per_shape` train tokens of it (ties:
    the simpler one, in `transforms` order)."""
    options = transforms(lang)
    pairs = train[[TASK["source"], TASK["target"]]].drop_duplicates().assign(shape=lambda f: f[TASK["source"]].map(shape))
    pairs = pairs.groupby("shape", sort=False).head(per_shape)
    chosen = {}
    for key, rows in pairs.groupby("shape", sort=False):
        best, hits = "unchanged", -1
        for name, fn in options.items():
            found = sum(fn(s) == t for s, t in zip(rows[TASK["source"]], rows[TASK["target"]], strict=True))
            if found > hits:
                best, hits = name, found
        chosen[key] = best
    return chosen


def fit(train):
    """The model: the token table, the context table (CONFIG's `context`), and each shape's fall-back."""
    model = {"tokens": most_frequent(train, [TASK["source"]])}
    if CONFIG["context"]:
        table = most_frequent(with_context(train), ["prev", TASK["source"], "next"])
        model["context"] = table[table["total"] >= CONFIG["min_context"]]
    if CONFIG["shapes"]:
        model["lang"] = language(train)
        model["shapes"] = learn_shapes(train, model["lang"])
    return model


def predict(model, frame, task=None):
    """Each row's output and where it came from (context, token, shape, unchanged). `task`: another TASK (a saved
    model's)."""
    task = task or TASK
    source, target = task["source"], task["target"]
    out = pd.Series(frame[source].to_numpy(), index=frame.index, dtype=object)
    how = pd.Series("unchanged", index=frame.index, dtype=object)
    tokens = frame[[source]].merge(model["tokens"][[source, target]], on=source, how="left")[target]
    known = tokens.notna().to_numpy()
    out[known], how[known] = tokens[known].to_numpy(), "token"
    if "context" in model:
        keys = with_context(frame, task)[["prev", source, "next"]]
        found = keys.merge(model["context"][["prev", source, "next", target]], on=["prev", source, "next"],
                           how="left")[target]
        seen = found.notna().to_numpy()
        out[seen], how[seen] = found[seen].to_numpy(), "context"
    if "shapes" in model:
        options = transforms(model.get("lang"))
        unseen = np.flatnonzero(~known)
        for i in unseen:
            token = frame[source].iat[i]
            name = model["shapes"].get(shape(token), "unchanged")
            value = options[name](token) if name in options else None
            if value is not None and name != "unchanged":
                out.iat[i], how.iat[i] = value, "shape"
    return out.astype(str), how


def save_model(model, folder="model"):
    """The fitted mapping as data (parquet tables and JSON, nothing that runs code on load): what `crew predict`
    and `crew.load` read back (`load_model`)."""
    os.makedirs(folder, exist_ok=True)
    files = []
    for name in ("tokens", "context"):
        if name in model:
            keys = ["prev", TASK["source"], "next"] if name == "context" else [TASK["source"]]
            model[name][[*keys, TASK["target"]]].to_parquet(os.path.join(folder, f"{name}.parquet"), index=False)
            files.append(f"{name}.parquet")
    with open(os.path.join(folder, "normalizer.json"), "w", encoding="utf-8") as fh:
        json.dump({"task": TASK, "config": CONFIG, "lang": model.get("lang"), "shapes": model.get("shapes"),
                   "tables": files}, fh)


def load_model(folder):
    """A model `save_model` wrote, and the TASK it was fitted for."""
    with open(os.path.join(folder, "normalizer.json"), encoding="utf-8") as fh:
        saved = json.load(fh)
    model = {name.removesuffix(".parquet"): pd.read_parquet(os.path.join(folder, name)) for name in saved["tables"]}
    if saved.get("shapes") is not None:
        model["shapes"], model["lang"] = saved["shapes"], saved.get("lang")
    return model, saved["task"]


def holdout(train):
    """Train and held-out rows: whole groups held out when the task names a group column."""
    rng = np.random.default_rng(CONFIG["seed"])
    group = TASK["group"]
    keys = train[group] if group and group in train.columns else pd.Series(np.arange(len(train)))
    unique = keys.unique()
    held = set(rng.choice(unique, size=max(1, int(len(unique) * CONFIG["holdout"])), replace=False).tolist())
    mask = keys.isin(held).to_numpy()
    return train[~mask].reset_index(drop=True), train[mask].reset_index(drop=True)


def main():
    started = time.time()
    train, test = load()
    fit_part, valid = holdout(train)
    pred, how = predict(fit(fit_part), valid)
    right = pred.to_numpy() == valid[TASK["target"]].to_numpy()
    by_source = {name: {"rows": int((how == name).sum()), "accuracy": float(right[(how == name).to_numpy()].mean())}
                 for name in ("context", "token", "shape", "unchanged") if (how == name).any()}
    model = fit(train)
    save_model(model)
    test_pred, _ = predict(model, test)
    pd.DataFrame({TASK["id_column"]: test[TASK["id_column"]], TASK["target"]: test_pred}).to_csv(
        "predictions.csv", index=False)
    metrics = {"metric": "accuracy", "cv": float(right.mean()), "cv_std": 0.0, "folds": [float(right.mean())],
               "holdout_rows": len(valid), "by_source": by_source, "language": model.get("lang"),
               "shapes": len(model.get("shapes", {})), "seconds": round(time.time() - started, 2)}
    with open("metrics.json", "w", encoding="utf-8") as fh:
        json.dump(metrics, fh)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
