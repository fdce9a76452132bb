"""The experiment script of an image-to-image task (a dirty page in, the clean page out), scored per pixel.

crew runs a copy of this file as an experiment's `code.py`, its `TASK` and
`CONFIG` filled in (`crew.workflows.media.script_for`). It reads only the
task's tables and the image folders they point to.

What a Kaggle expert does on denoising-dirty-documents, in the order crew
tries it: every image decoded once at its own size as grey levels in
[0, 1] (the scale the submission is scored on); a gradient-boosted model
of each pixel from its neighbourhood (the raw window around it, the local
background, the image's own levels), fitted on a sample of pixels; then a
small fully convolutional denoiser (dilated 3 x 3 convolutions that see
tens of pixels around each one, a residual on the input) trained on random
crops with flips, predicting whole pages of any size. A fifth of the train
pages are held out: their pixels are `oof.csv`, scored by the task's metric
as the reviewer recomputes it from the clean pages. Each epoch's seconds
and peak GPU memory go to metrics.json; training stops early when the next
epoch would not finish in the time the critic granted.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pandas as pd

TASK: dict = {"train": "train.csv", "test": "test.csv", "id_column": "id", "media": "image", "target": "clean",
              "metric": "rmse", "key": "id", "value": "value", "format": "{id}_{row}_{col}"}
CONFIG: dict = {"model": "boosted", "radius": 3, "sample": 200000, "estimators": 500, "epochs": 20, "patches": 512,
                "patch": 48, "batch": 16, "lr": 0.002, "width": 32, "holdout": 0.2, "seed": 0, "time_limit": 600.0,
                "page_side": 64}
"""`page_side`: the pages' typical side (the square root of their pixels), which the critic prices a pass over
every pixel by; pages are always cleaned at their own size."""
COMMON = ("model", "holdout", "seed", "time_limit", "page_side")
"""The settings both models read; the rest belong to one of them (`crew.workflows.media` fills in only those)."""
TIMINGS: dict = {}
DILATIONS = (1, 2, 4, 8, 4, 2, 1)
"""The denoiser's 3 x 3 convolutions: each pixel sees 45 x 45 around it, at about 50 k multiply-adds a pixel."""


def read(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, low_memory=False)


def grey(root, rel):
    """An image as grey levels in [0, 1], float32, at its own size (as the submission's pixels are)."""
    from PIL import Image

    with Image.open(os.path.join(root, str(rel))) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def score(truth, predicted):
    """The task's metric over every pixel."""
    from sklearn import metrics

    truth, predicted = np.concatenate([t.ravel() for t in truth]), np.concatenate([p.ravel() for p in predicted])
    if TASK["metric"] == "mae":
        return float(metrics.mean_absolute_error(truth, predicted))
    return float(metrics.root_mean_squared_error(truth, predicted))


def pixel_frame(ids, images, task=None):
    """The long table of `images` (each an id's page), a polars frame: one row per pixel, keyed as the
    submission's format says (`task`: the saved task a predictor applies, else this script's). A format of plain
    `{id}`, `{row}` and `{col}` fields is built column-wise (a second for millions of pixels, where formatting each
    key took ten); one with format specs is formatted pixel by pixel."""
    import string

    import polars as pl

    task = task or TASK
    fmt = task["format"]
    parts = list(string.Formatter().parse(fmt))
    plain = all(not spec and not conversion and field in (None, "id", "row", "col")
                for _, field, spec, conversion in parts)
    frames = []
    for image_id, image in zip(ids, images, strict=True):
        height, width = image.shape
        values = pl.Series(task["value"], np.clip(image, 0.0, 1.0).ravel())
        if plain:
            grid = pl.DataFrame({"row": np.repeat(np.arange(1, height + 1), width),
                                 "col": np.tile(np.arange(1, width + 1), height)})
            pieces = []
            for literal, field, _, _ in parts:
                if literal:
                    pieces.append(pl.lit(literal))
                if field == "id":
                    pieces.append(pl.lit(str(image_id)))
                elif field is not None:
                    pieces.append(pl.col(field).cast(pl.Utf8))
            keys = grid.select(pl.concat_str(pieces).alias(task["key"]))[task["key"]]
        else:
            keys = pl.Series(task["key"], [fmt.format(id=image_id, row=r, col=c) for r in range(1, height + 1)
                                           for c in range(1, width + 1)], dtype=pl.Utf8)
        frames.append(pl.DataFrame([keys, values]))
    if not frames:
        return pl.DataFrame({task["key"]: [], task["value"]: []}, schema={task["key"]: pl.Utf8,
                                                                          task["value"]: pl.Float32})
    return pl.concat(frames)


# ---- the boosted model of each pixel ----
def pixel_features(image, radius):
    """One row per pixel: the (2r+1)^2 window around it, the local background (a wide maximum and mean), its
    difference to the background, and the page's own levels."""
    from scipy import ndimage

    side = 2 * radius + 1
    window = np.lib.stride_tricks.sliding_window_view(np.pad(image, radius, mode="edge"), (side, side))
    window = window.reshape(image.size, side * side)
    background = ndimage.maximum_filter(image, size=15, mode="nearest")
    mean = ndimage.uniform_filter(image, size=15, mode="nearest")
    median = ndimage.median_filter(image, size=5, mode="nearest")
    levels = np.percentile(image, [5, 50, 95]).astype(np.float32)
    return np.hstack([window, np.stack([background.ravel(), mean.ravel(), median.ravel(),
                                        (image - background).ravel()], axis=1),
                      np.broadcast_to(levels, (image.size, 3))]).astype(np.float32)


def fit_boosted(inputs, targets, fit, hold, threads, started):
    """LightGBM on a sample of the fitting pages' pixels, stopped early on a sample of the held-out pages'."""
    import lightgbm as lgb

    rng = np.random.default_rng(CONFIG["seed"])
    radius = int(CONFIG["radius"])

    def sample(pages, limit):
        total = sum(inputs[i].size for i in pages)
        keep = min(1.0, limit / max(1, total))
        xs, ys = [], []
        for i in pages:
            take = rng.uniform(size=inputs[i].size) < keep
            xs.append(pixel_features(inputs[i], radius)[take])
            ys.append(targets[i].ravel()[take])
        return np.vstack(xs), np.concatenate(ys)

    x_fit, y_fit = sample(fit, int(CONFIG["sample"]))
    x_hold, y_hold = sample(hold, max(2000, int(CONFIG["sample"]) // 4))
    left = CONFIG["time_limit"] - (time.perf_counter() - started)
    model = lgb.LGBMRegressor(n_estimators=int(CONFIG["estimators"]), learning_rate=0.08, num_leaves=63,
                              min_child_samples=40, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                              n_jobs=max(1, threads), random_state=CONFIG["seed"], verbose=-1)
    deadline = time.perf_counter() + max(1.0, left * 0.6)  # the rest predicts every held-out and test pixel

    def stop_at_deadline(env):
        if time.perf_counter() > deadline:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    model.fit(x_fit, y_fit, eval_X=(x_hold,), eval_y=(y_hold,),
              callbacks=[lgb.early_stopping(30, verbose=False), stop_at_deadline])
    return model, len(y_fit)


def predict_boosted(model, image, radius):
    """`model`: a fitted LGBMRegressor or a LightGBM Booster (a predictor's)."""
    return np.clip(model.predict(pixel_features(image, radius)).reshape(image.shape), 0.0, 1.0).astype(np.float32)


# ---- the convolutional denoiser ----
def build_denoiser(width, dilations=DILATIONS):
    import torch
    from torch import nn

    class Denoiser(nn.Module):
        """Dilated 3 x 3 convolutions predicting what to add to the dirty page."""

        def __init__(self):
            super().__init__()
            layers, channels = [], 1
            for dilation in dilations:
                layers += [nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
                channels = width
            self.body = nn.Sequential(*layers, nn.Conv2d(width, 1, 3, padding=1))

        def forward(self, x):
            return x + self.body(x)

    torch.manual_seed(CONFIG["seed"])
    return Denoiser()


def crops(inputs, targets, pages, count, side, rng):
    """`count` random side x side crops of the pages (picked by area), flipped at random, as two float arrays."""
    areas = np.array([inputs[i].size for i in pages], dtype=float)
    picks = rng.choice(pages, size=count, p=areas / areas.sum())
    x = np.empty((count, 1, side, side), dtype=np.float32)
    y = np.empty_like(x)
    for n, i in enumerate(picks):
        height, width = inputs[i].shape
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        a, b = inputs[i][top:top + side, left:left + side], targets[i][top:top + side, left:left + side]
        if rng.uniform() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if rng.uniform() < 0.5:
            a, b = a[::-1], b[::-1]
        x[n, 0], y[n, 0] = a, b
    return x, y


def train_denoiser(inputs, targets, fit, threads, started, pixels_out=0):
    """Epochs of `patches` random crops each; returns the network, the per-epoch log and the device. Training
    stops early when the next epoch, then predicting and writing the `pixels_out` held-out and test pixels, would
    not finish in the time granted."""
    import torch

    torch.set_num_threads(max(1, threads))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    net = build_denoiser(int(CONFIG["width"])).to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    side = int(min(CONFIG["patch"], *(min(inputs[i].shape) for i in fit)))
    epochs, batch, patches = int(CONFIG["epochs"]), int(CONFIG["batch"]), int(CONFIG["patches"])
    steps = max(1, math.ceil(patches / batch))
    optimiser = torch.optim.AdamW(net.parameters(), lr=CONFIG["lr"], weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=CONFIG["lr"], total_steps=epochs * steps,
                                                   pct_start=0.2)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    rng = np.random.default_rng(CONFIG["seed"])
    log = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for epoch in range(epochs):
        tick = time.perf_counter()
        net.train()
        x_all, y_all = crops(inputs, targets, fit, steps * batch, side, rng)
        total = 0.0
        for step in range(steps):
            x = torch.from_numpy(x_all[step * batch:(step + 1) * batch]).to(device)
            y = torch.from_numpy(y_all[step * batch:(step + 1) * batch]).to(device)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=cuda):
                loss = torch.nn.functional.mse_loss(net(x).float(), y)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            if schedule.last_epoch + 1 < schedule.total_steps:
                schedule.step()
            total += float(loss.detach())
        seconds = time.perf_counter() - tick
        log.append({"epoch": epoch + 1, "seconds": round(seconds, 3), "loss": round(total / steps, 6),
                    "peak_gpu_memory": int(torch.cuda.max_memory_allocated()) if cuda else 0})
        # the next epoch, then every held-out and test page forward (about 0.4 of a training pixel's time) and
        # written (about 1.5 us a pixel), must fit
        after = pixels_out * (0.4 * seconds / (steps * batch * side * side) + 1.5e-6)
        if epoch + 1 < epochs and time.perf_counter() - started + seconds + after > CONFIG["time_limit"]:
            log[-1]["stopped"] = "the next epoch would not finish in the time granted"
            break
    return net, log, device, side


def predict_denoiser(net, image, device):
    import torch

    net.eval()
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        out = net(torch.from_numpy(image[None, None]).to(device)).float()
    return np.clip(out[0, 0].cpu().numpy(), 0.0, 1.0)


def main():
    started = time.perf_counter()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    root = os.environ.get("CREW_DATA", ".")
    train, test = read(os.path.join(root, TASK["train"])), read(os.path.join(root, TASK["test"]))
    train = train[train[TASK["target"]].notna()].reset_index(drop=True)
    inputs = [grey(root, p) for p in train[TASK["media"]]]
    targets = [grey(root, p) for p in train[TASK["target"]]]
    tests = [grey(root, p) for p in test[TASK["media"]]]
    for i, (a, b) in enumerate(zip(inputs, targets, strict=True)):
        if a.shape != b.shape:
            raise SystemExit(f"train row {i}: the input is {a.shape} pixels and its target {b.shape}: they must match")
    TIMINGS["decode"] = round(time.perf_counter() - started, 3)
    rng = np.random.default_rng(CONFIG["seed"])
    order = rng.permutation(len(train))
    held = min(len(train) - 1, max(1, round(CONFIG["holdout"] * len(train))))
    hold, fit = np.sort(order[:held]), np.sort(order[held:])
    report = {"model": CONFIG["model"], "rows_holdout": int(held), "pages_fit": len(fit),
              "holdout": [str(v) for v in train[TASK["id_column"]].iloc[hold]]}
    tick = time.perf_counter()
    os.makedirs("model", exist_ok=True)
    if CONFIG["model"] == "boosted":
        model, rows = fit_boosted(inputs, targets, fit, hold, threads, started)
        TIMINGS["fit"] = round(time.perf_counter() - tick, 3)
        predict = lambda image: predict_boosted(model, image, int(CONFIG["radius"]))  # noqa: E731
        model.booster_.save_model(os.path.join("model", "boosted.txt"))  # LightGBM's own text format: no code
        report.update({"device": "cpu", "rows_fit": rows, "rounds": int(model.booster_.current_iteration())})
    else:
        pixels_out = sum(inputs[i].size for i in hold) + sum(image.size for image in tests)
        net, log, device, side = train_denoiser(inputs, targets, fit, threads, started, pixels_out)
        TIMINGS["fit"] = round(time.perf_counter() - tick, 3)
        predict = lambda image: predict_denoiser(net, image, device)  # noqa: E731
        import torch

        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, os.path.join("model", "weights.pt"))
        report.update({"device": device.type, "epochs": log, "epochs_run": len(log), "patch": side,
                       "rows_fit": int(CONFIG["patches"]), "image_size": side,
                       "epoch_seconds": round(float(np.median([e["seconds"] for e in log])), 4),
                       "peak_gpu_memory": max(e["peak_gpu_memory"] for e in log)})
    with open(os.path.join("model", "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"config": CONFIG, "task": TASK, "dilations": list(DILATIONS)}, fh)
    tick = time.perf_counter()
    held_pred = [predict(inputs[i]) for i in hold]
    fit_pred = [predict(inputs[i]) for i in fit[:3]]
    test_pred = [predict(image) for image in tests]
    TIMINGS["predict"] = round(time.perf_counter() - tick, 3)
    cv = score([targets[i] for i in hold], held_pred)
    pixel_frame(train[TASK["id_column"]].iloc[hold], held_pred).write_csv("oof.csv")
    pixel_frame(test[TASK["id_column"]], test_pred).write_csv("predictions.csv")
    TIMINGS["total"] = round(time.perf_counter() - started, 3)
    metrics = {"metric": TASK["metric"], "cv": cv, "cv_std": 0.0, "folds": [cv],
               "train_score": score([targets[i] for i in fit[:3]], fit_pred),
               "input_score": score([targets[i] for i in hold], [inputs[i] for i in hold]),
               "timings": TIMINGS, **report}
    with open("metrics.json", "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=1)
    print(f"{CONFIG['model']}: holdout {TASK['metric']} {cv:.5f} (the dirty pages: {metrics['input_score']:.5f}) "
          f"in {TIMINGS['total']:.1f}s")


if __name__ == "__main__":
    main()
