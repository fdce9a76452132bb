"""The experiment script of an image or sound task: a network trained on decoded media, or a boosted baseline.

crew runs a copy of this file as an experiment's `code.py`, its `TASK` and
`CONFIG` filled in and the tabular script's `canonical`, `score`,
`submission_frame` and `raw_frame` appended (`crew.workflows.media.script_for`):
one definition of labels, the metric and the submission's format. It reads
only the task's tables and the media folders they point to.

What a Kaggle expert does on an image task, in the order crew tries it:
decode every file once into a resized array (images as RGB, sound as a
log-mel spectrogram, one channel), kept in the run's shared folder so the
next experiment skips decoding; a gradient-boosted baseline on summary
statistics of each array (colour moments, a coarse thumbnail, edge energy;
per-band loudness for sound) and the table's own columns beside the files
(a patient's age, the body site); a compact CNN trained from scratch with flips
and shifted crops; a pretrained ResNet fine-tuned when its weights are on
the machine (torchvision's cache, copied by crew into the shared folder: no
network); and test-time augmentation. A fifth of train is held out: its
predictions are `oof.csv`, scored by the task's metric as the reviewer
recomputes it. On a GPU the network trains in mixed precision,
channels-last; every epoch's seconds and peak GPU memory go to metrics.json,
and training stops early when the next epoch would not finish in the time
the critic granted (`CONFIG["time_limit"]`).

Several labels per file (`TASK["targets"]`, `target_type` "multilabel": a
several-target task's joint network, run by `crew.workflows.columns` before
the columns' own runs) train one network with a sigmoid per label, as a
Kaggle expert trains a multi-label classifier: the files are decoded and
the features learnt once for every label, and an unknown label (a missing
cell) is left out of the loss. predictions.csv then holds a probability
column per label, and metrics.json each label's held-out score by the
per-column metric (`score`, `crew.tools.multioutput`'s).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

TASK: dict = {"train": "train.csv", "test": "test.csv", "target": "label", "id_column": "id", "media": "image",
              "kind": "image", "metric": "accuracy", "higher_is_better": True, "target_type": "multiclass",
              "classes": ["a", "b"], "positive": None, "submission": "label", "nonnegative": False,
              "targets": None}
CONFIG: dict = {"model": "cnn", "image_size": 64, "epochs": 12, "batch": 64, "lr": 0.003, "width": 32,
                "augment": True, "tta": False, "holdout": 0.2, "seed": 0, "time_limit": 600.0, "weights": None,
                "estimators": 400}

DECODE_VERSION = 1
"""Bumped when decoding changes: it is part of the array store's key, so an old store is never read as new."""
MEL_BANDS_FLOOR_DB = 80.0
"""A spectrogram keeps the loudest 80 dB of each clip, scaled to 0..255."""
TIMINGS: dict = {}


def read(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, low_memory=False)


def load():
    root = os.environ.get("CREW_DATA", ".")
    train = read(os.path.join(root, TASK["train"]))
    test = read(os.path.join(root, TASK["test"]))
    known = train[TASK["targets"]].notna().any(axis=1) if TASK.get("targets") else train[TASK["target"]].notna()
    train = train[known].reset_index(drop=True)
    return root, train, test


# ---- decoding: each file once, into a resized array ----
def decode_image(path, size):
    """An image as size x size x 3 uint8 (RGB; grey and palette images converted, alpha dropped)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # a JPEG decodes at the smallest scale still >= size: much faster
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(image, dtype=np.uint8)


def mel_filters(rate, n_fft, bands):
    """Triangular mel filters (Slaney's mel scale, as librosa's default) over the FFT bins."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=float) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=float) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(20.0), mel(rate / 2.0), bands + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    out = np.zeros((bands, bins.size))
    for i in range(bands):
        left, centre, right = edges[i], edges[i + 1], edges[i + 2]
        rising = (bins - left) / max(centre - left, 1e-9)
        falling = (right - bins) / max(right - centre, 1e-9)
        out[i] = np.clip(np.minimum(rising, falling), 0.0, None)
    return out


def decode_audio(path, size):
    """A sound as a size x size x 1 uint8 log-mel spectrogram: `size` mel bands by `size` frames over the clip."""
    import soundfile
    from scipy import signal

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    wave = data.mean(axis=1)
    n_fft = 512 if rate >= 8000 else 256
    hop = max(1, (len(wave) - n_fft) // max(1, size - 1)) if len(wave) > n_fft else 1
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    _, _, spec = signal.stft(wave, fs=rate, nperseg=n_fft, noverlap=max(0, n_fft - hop), boundary=None, padded=False)
    power = np.abs(spec) ** 2
    mel = mel_filters(rate, n_fft, size) @ power
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.clip(db - db.max(), -MEL_BANDS_FLOOR_DB, 0.0)
    frames = np.linspace(0, db.shape[1] - 1, size).round().astype(int) if db.shape[1] else np.zeros(size, int)
    img = (db[::-1, frames] + MEL_BANDS_FLOOR_DB) / MEL_BANDS_FLOOR_DB * 255.0  # low bands at the bottom
    return img.astype(np.uint8)[:, :, None]


def decode(path, size, kind):
    return decode_image(path, size) if kind == "image" else decode_audio(path, size)


def decode_all(root, paths, size, kind, threads):
    """Every file decoded, as one N x size x size x C uint8 array, with `threads` threads (PIL and libsndfile
    release the GIL)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return np.stack(list(pool.map(lambda p: decode(os.path.join(root, p), size, kind), paths)))


def store_key(root, paths, size, kind):
    """What the array store holds, as a digest: the files (path, size, mtime), the size, the kind, the decoder."""
    digest = hashlib.sha256(f"{kind}|{size}|{DECODE_VERSION}".encode())
    for path in paths:
        stat = os.stat(os.path.join(root, path))
        digest.update(f"|{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def media_arrays(root, paths, size, kind, threads):
    """Every file decoded, as one N x size x size x C uint8 array: read from the run's shared store when an earlier
    experiment decoded the same files at the same size (crew checked and promoted it), else decoded here with
    `threads` threads (PIL and libsndfile release the GIL) and written to store/ for crew to promote."""
    key = store_key(root, paths, size, kind)
    shared = os.environ.get("CREW_SHARED")
    name = f"media-{key}.npy"
    if shared and os.path.isfile(os.path.join(shared, name)):
        arrays = np.load(os.path.join(shared, name), mmap_mode="r", allow_pickle=False)
        TIMINGS["store"] = "hit"
        return np.asarray(arrays)
    start = time.perf_counter()
    arrays = decode_all(root, paths, size, kind, threads)
    TIMINGS["decode"] = round(time.perf_counter() - start, 3)
    TIMINGS["store"] = "decoded"
    os.makedirs("store", exist_ok=True)
    np.save(os.path.join("store", name), arrays, allow_pickle=False)
    return arrays


# ---- the boosted baseline: summary statistics of each array ----
def summary_features(arrays, chunk=512):
    """Per channel: mean, spread and quantiles; a 4x4 thumbnail; edge energy. For a spectrogram (one channel),
    also each of 16 band groups' mean and spread over time. `chunk` files at a time, so that the float copy
    stays small beside a (memory-mapped) store of any size."""
    if len(arrays) <= chunk:
        return _summary(arrays)
    return np.concatenate([_summary(arrays[start:start + chunk]) for start in range(0, len(arrays), chunk)])


def _summary(arrays):
    x = arrays.astype(np.float32) / 255.0
    n, h, w, c = x.shape
    parts = []
    for ch in range(c):
        flat = x[..., ch].reshape(n, -1)
        parts += [flat.mean(1), flat.std(1), *np.quantile(flat, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)]
        parts.append(np.abs(np.diff(x[..., ch], axis=1)).mean((1, 2)))
        parts.append(np.abs(np.diff(x[..., ch], axis=2)).mean((1, 2)))
    grey = x.mean(axis=3)
    thumb = grey[:, : h - h % 4, : w - w % 4].reshape(n, 4, h // 4, 4, w // 4).mean((2, 4)).reshape(n, 16)
    columns = [np.stack(parts, axis=1), thumb]
    if c == 1:
        bands = grey[:, : h - h % 16].reshape(n, 16, h // 16, w)
        columns += [bands.mean((2, 3)), bands.std((2, 3))]
    return np.concatenate(columns, axis=1)


def metadata_columns(train, test):
    """The table's own columns beside the files (a patient's age, the body site): numbers as they are, and text
    columns of at most 50 values as their value's rank in train (unseen: missing). Ids, the target and the paths
    are left out; so are columns test lacks. Returns {column: None for a number, or the list of its values}."""
    skip = {TASK["target"], TASK["id_column"], TASK["media"], *(TASK.get("targets") or [])}
    kept = {}
    for name in train.columns:
        if name in skip or name not in test.columns:
            continue
        column = train[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            kept[name] = None
        elif 1 < column.nunique() <= 50:
            kept[name] = sorted(column.dropna().astype(str).unique().tolist())
    return kept


def metadata_matrix(frame, columns):
    """`metadata_columns`' columns of `frame` as floats (NaN where missing or unseen)."""
    parts = []
    for name, values in columns.items():
        if values is None:
            parts.append(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float))
        else:
            index = {v: float(i) for i, v in enumerate(values)}
            text = frame[name].astype(str).where(frame[name].notna())
            parts.append(text.map(index).to_numpy(dtype=float))
    return np.column_stack(parts) if parts else np.zeros((len(frame), 0))


def fit_boosted(x_fit, y_fit, x_sets, threads):
    import lightgbm as lgb

    regression = TASK["target_type"] == "regression"
    # a multi-class booster grows a tree per class and round: many classes get fewer, faster-learning rounds
    per_round = 1 if regression or len(TASK["classes"]) <= 2 else len(TASK["classes"])
    rounds = int(np.clip(CONFIG["estimators"] * 10 // max(10, per_round), 30, CONFIG["estimators"]))
    params = {"n_estimators": rounds, "learning_rate": min(0.2, 0.05 * CONFIG["estimators"] / rounds),
              "num_leaves": 31, "min_child_samples": 5, "subsample": 0.8,
              "subsample_freq": 1, "colsample_bytree": 0.8, "random_state": CONFIG["seed"], "n_jobs": threads,
              "verbose": -1}
    model = lgb.LGBMRegressor(**params) if regression else lgb.LGBMClassifier(**params)
    model.fit(x_fit, y_fit)
    outs = []
    for x in x_sets:
        if regression:
            outs.append(model.predict(x))
        else:
            outs.append(class_probabilities(model.predict_proba(x), model.classes_, len(TASK["classes"])))
    return model, outs


def class_probabilities(proba, fitted, classes):
    """A booster's probabilities over the classes it saw (`fitted`), spread over all `classes` columns with a floor:
    a class absent from the fitted rows, or one the trees rule out, is never given 0, which a log loss takes as
    certain."""
    out = np.zeros((len(proba), classes))
    out[:, fitted] = proba
    out = np.clip(out, 1e-6, None)
    return out / out.sum(axis=1, keepdims=True)


# ---- networks ----
def outputs_of(task):
    """A network's outputs for `task`: one value, a logit per label (several labels) or one per class."""
    if task["target_type"] == "regression":
        return 1
    return len(task["targets"]) if task["target_type"] == "multilabel" else len(task["classes"])


def compact_cnn(in_channels, outputs, width):
    """A VGG-like stack: conv-BN-ReLU at widths w, 2w, 4w, 8w with 2x2 pooling between (the two deepest, at low
    resolution, convolve twice), global average pooling, dropout, linear. About 90 M multiply-adds on 64 x 64."""
    import torch.nn as nn

    layers, channels = [], in_channels
    for stage in range(4):
        out = width * 2 ** stage
        for _ in range(2 if stage >= 2 else 1):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        if stage < 3:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels, outputs)]
    return nn.Sequential(*layers)


RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
"""The ResNets whose torchvision weights crew looks for; their parameter names are torchvision's."""


def resnet(name, in_channels, outputs):
    """torchvision's ResNet-18/34 (BasicBlock) with the same parameter names, so its checkpoints load as they are.
    Its stem takes 3 channels (a 1-channel spectrogram is repeated in `forward`, so `in_channels` changes nothing)
    and its head 1,000 classes, as the checkpoints have them: `build_network` sizes the head for `outputs`."""
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + skip)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (count, cout) in enumerate(zip(RESNET_BLOCKS[name], (64, 128, 256, 512), strict=True)):
                blocks = [Block(cin, cout, 1 if i == 0 else 2)] + [Block(cout, cout, 1) for _ in range(count - 1)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                cin = cout
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            if x.shape[1] == 1:  # a spectrogram: the pretrained first layer sees it as grey
                x = x.expand(-1, 3, -1, -1)
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def build_network(config, in_channels, outputs, weights=None):
    """The network `config` names, its head sized for `outputs`; `weights`: a torchvision checkpoint to start from."""
    import torch
    import torch.nn as nn

    if config["model"] == "cnn":
        return compact_cnn(in_channels, outputs, int(config["width"]))
    net = resnet(config["model"], in_channels, outputs)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)  # tensors only: no code runs on load
        net.load_state_dict(state)
    net.fc = nn.Linear(net.fc.in_features, outputs)
    return net


# ---- training ----
def normalisation(arrays, pretrained):
    """Per-channel mean and spread the inputs are scaled by: ImageNet's for a pretrained network, else train's."""
    if pretrained and arrays.shape[3] == 3:
        return [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    sample = arrays[:: max(1, len(arrays) // 2000)].astype(np.float32) / 255.0
    return sample.mean((0, 1, 2)).tolist(), (sample.std((0, 1, 2)) + 1e-6).tolist()


def to_tensor(batch, mean, std, device, channels_last):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - torch.tensor(mean, device=device).view(1, -1, 1, 1)) / torch.tensor(std, device=device).view(1, -1, 1, 1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment(x, generator):
    """Flips (horizontal for all; vertical too for images, where orientation rarely carries the label) and a
    shifted crop of up to an eighth of the side, reflected at the border; for a spectrogram, a time shift only."""
    import torch

    n, _, h, w = x.shape
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    if TASK["kind"] == "image":
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        vflip = torch.rand(n, device=x.device, generator=generator) < 0.5
        x = torch.where(vflip.view(-1, 1, 1, 1), x.flip(2), x)
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(x, (pad, pad, pad if TASK["kind"] == "image" else 0,
                                         pad if TASK["kind"] == "image" else 0), mode="reflect")
    dx = int(torch.randint(0, 2 * pad + 1, (1,), generator=generator, device=x.device))
    dy = int(torch.randint(0, 2 * pad + 1, (1,), generator=generator, device=x.device)) if TASK["kind"] == "image" else 0
    return padded[:, :, dy:dy + h, dx:dx + w]


def predict(net, arrays, mean, std, device, channels_last, tta, batch, task=None):
    """Class probabilities (each label's, for several labels; or values, standardised) for every array; with `tta`,
    averaged over the flips training used (images) or over time shifts (sound). `task`: another TASK (a saved
    model's)."""
    import torch

    task = task or TASK
    regression = task["target_type"] == "regression"
    multilabel = task["target_type"] == "multilabel"
    views = [lambda x: x]
    if tta and task["kind"] == "image":  # the flips training used
        views += [lambda x: x.flip(3), lambda x: x.flip(2)]
    elif tta:  # a spectrogram read backwards is another sound (a rising chirp falls): shifted in time instead
        shift = max(1, arrays.shape[2] // 16)
        views += [lambda x: x.roll(shift, dims=3), lambda x: x.roll(-shift, dims=3)]
    net.eval()
    out = []
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for start in range(0, len(arrays), batch):
            x = to_tensor(arrays[start:start + batch], mean, std, device, channels_last)
            total = 0
            for view in views:
                logits = net(view(x)).float()
                total = total + (logits[:, 0] if regression else torch.sigmoid(logits) if multilabel
                                 else torch.softmax(logits, dim=1))
            out.append((total / len(views)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) if regression else (0, outputs_of(task)))


def train_network(arrays, y, fit_idx, threads, started):
    """Train on the `fit_idx` rows; returns the network, its normalisation, the per-epoch log and the device."""
    import torch

    torch.set_num_threads(max(1, threads))
    torch.manual_seed(CONFIG["seed"])
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    regression = TASK["target_type"] == "regression"
    multilabel = TASK["target_type"] == "multilabel"
    outputs = outputs_of(TASK)
    weights = CONFIG.get("weights")
    if weights and not os.path.isabs(weights):
        weights = os.path.join(os.environ.get("CREW_SHARED", "."), weights)
    net = build_network(CONFIG, arrays.shape[3], outputs, weights).to(device)
    channels_last = cuda
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    mean, std = normalisation(arrays[fit_idx], bool(weights))
    epochs, batch = int(CONFIG["epochs"]), int(CONFIG["batch"])
    steps = max(1, math.ceil(len(fit_idx) / batch))
    optimiser = torch.optim.AdamW(net.parameters(), lr=CONFIG["lr"], weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=CONFIG["lr"], total_steps=epochs * steps,
                                                   pct_start=0.25)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    loss_fn = torch.nn.MSELoss() if regression else torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    target = torch.as_tensor(y, dtype=torch.float32 if regression or multilabel else torch.long)
    if multilabel:  # a missing label is left out of the loss
        known = ~torch.isnan(target)
        target = torch.nan_to_num(target)
        bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    if regression:  # values are standardised for training, and scaled back for prediction
        centre, scale = float(target[fit_idx].mean()), float(target[fit_idx].std() or 1.0)
        target = (target - centre) / scale
    else:
        centre, scale = 0.0, 1.0
    generator = torch.Generator(device=device)
    generator.manual_seed(CONFIG["seed"])
    rng = np.random.default_rng(CONFIG["seed"])
    log = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for epoch in range(epochs):
        tick = time.perf_counter()
        net.train()
        order = rng.permutation(fit_idx)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch):
            rows = np.sort(order[start:start + batch])
            if len(rows) < 2:  # BatchNorm needs two rows
                continue
            x = to_tensor(arrays[rows], mean, std, device, channels_last)
            if CONFIG["augment"]:
                x = augment(x, generator)
            t = target[rows].to(device)
            with torch.autocast(device.type, enabled=cuda):
                out = net(x)
                if multilabel:
                    mask = known[rows].to(device).float()
                    loss = (bce(out.float(), t) * mask).sum() / mask.sum().clamp(min=1)
                else:
                    loss = loss_fn(out[:, 0].float() if regression else out.float(), t)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            if schedule.last_epoch + 1 < schedule.total_steps:
                schedule.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        seconds = time.perf_counter() - tick
        log.append({"epoch": epoch + 1, "seconds": round(seconds, 3), "loss": round(total / max(1, seen), 5),
                    "peak_gpu_memory": int(torch.cuda.max_memory_allocated()) if cuda else 0})
        elapsed = time.perf_counter() - started
        # the next epoch, then predicting holdout and test (about a third of an epoch per pass), must fit
        if epoch + 1 < epochs and elapsed + seconds * 1.6 > CONFIG["time_limit"]:
            log[-1]["stopped"] = "the next epoch would not finish in the time granted"
            break
    return net, (mean, std, centre, scale), log, device, channels_last


def label_scores(y, proba):
    """Each label's score by the per-column metric, over the rows where it is known (NaN when it cannot be scored:
    one value among them)."""
    out = {}
    for k, column in enumerate(TASK["targets"]):
        known = ~np.isnan(y[:, k])
        out[column] = float(score(y[known, k], proba[known, k])) if known.any() else float("nan")
    return out


def load_network(folder, threads):
    """A network another experiment trained and saved (model/: config.json and weights.pt), on this machine's
    device, with the normalisation it was trained with."""
    import torch

    torch.set_num_threads(max(1, threads))
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
        saved = json.load(fh)
    net = build_network({**saved["config"], "weights": None}, int(saved["in_channels"]), outputs_of(TASK))
    net.load_state_dict(torch.load(os.path.join(folder, "weights.pt"), map_location="cpu", weights_only=True))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    net = net.to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    return net, (saved["mean"], saved["std"], saved["centre"], saved["scale"]), device, cuda


def main():
    started = time.perf_counter()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    root, train, test = load()
    regression = TASK["target_type"] == "regression"
    multilabel = TASK["target_type"] == "multilabel"
    if multilabel and CONFIG["model"] == "boosted":
        raise ValueError("several labels train one network: CONFIG['model'] must be a network, not 'boosted'")
    if multilabel:  # a column per label; NaN where a label is unknown
        y = train[TASK["targets"]].to_numpy(dtype=float)
    elif regression:
        y = train[TASK["target"]].to_numpy(dtype=float)
    else:
        index = {label: i for i, label in enumerate(TASK["classes"])}
        y = np.array([index[label] for label in canonical(train[TASK["target"]].to_numpy())])
    paths = list(train[TASK["media"]].astype(str)) + list(test[TASK["media"]].astype(str))
    size = int(CONFIG["image_size"])
    arrays = media_arrays(root, paths, size, TASK["kind"], threads)
    arrays_train, arrays_test = arrays[: len(train)], arrays[len(train):]
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(train))
    held = max(1, round(CONFIG["holdout"] * len(rows)))
    # stratified when every class has two rows and both parts can hold every class (120 dog breeds need 120 rows)
    stratify = None if regression or multilabel or np.bincount(y).min() < 2 or min(held, len(rows) - held) < np.bincount(y).size \
        else y
    fit_idx, hold_idx = train_test_split(rows, test_size=held, random_state=CONFIG["seed"], stratify=stratify)
    fit_idx, hold_idx = np.sort(fit_idx), np.sort(hold_idx)
    report = {"model": CONFIG["model"], "image_size": size, "rows_fit": len(fit_idx),
              "rows_holdout": len(hold_idx)}
    if CONFIG["model"] == "boosted":
        tick = time.perf_counter()
        features = summary_features(arrays)
        meta = metadata_columns(train, test)  # the table's own columns beside the files
        f_train = np.hstack([features[: len(train)], metadata_matrix(train, meta)])
        f_test = np.hstack([features[len(train):], metadata_matrix(test, meta)])
        report["metadata"] = list(meta)
        boosted, (hold, fit_pred, test_raw) = fit_boosted(f_train[fit_idx], y[fit_idx],
                                                          [f_train[hold_idx], f_train[fit_idx], f_test], threads)
        TIMINGS["fit"] = round(time.perf_counter() - tick, 3)
        report["device"] = "cpu"
        net = None
        os.makedirs("model", exist_ok=True)
        boosted.booster_.save_model(os.path.join("model", "boosted.txt"))  # LightGBM's own text format: no code
        with open(os.path.join("model", "config.json"), "w", encoding="utf-8") as fh:
            json.dump({"config": CONFIG, "task": TASK, "in_channels": int(arrays.shape[3]), "metadata": meta,
                       "fitted_classes": [] if regression else [int(c) for c in boosted.classes_]}, fh)
    else:
        if CONFIG.get("init"):  # an earlier experiment's network, shared by crew: predict only
            net, norm, device, channels_last = load_network(os.path.join(os.environ.get("CREW_SHARED", "."),
                                                                         CONFIG["init"]), threads)
            log = []
        else:
            net, norm, log, device, channels_last = train_network(arrays_train, y, fit_idx, threads, started)
        mean, std, centre, scale = norm
        batch = max(int(CONFIG["batch"]), 64)
        tick = time.perf_counter()
        hold, fit_pred, test_raw = (predict(net, part, mean, std, device, channels_last, CONFIG["tta"], batch)
                                    for part in (arrays_train[hold_idx], arrays_train[fit_idx[:500]], arrays_test))
        if regression:
            hold, fit_pred, test_raw = (v * scale + centre for v in (hold, fit_pred, test_raw))
        TIMINGS["predict"] = round(time.perf_counter() - tick, 3)
        report.update({"device": device.type, "epochs": log, "epochs_run": len(log),
                       "pretrained": CONFIG.get("weights"), "init": CONFIG.get("init")})
        if log:
            report.update({"epoch_seconds": round(float(np.median([e["seconds"] for e in log])), 4),
                           "peak_gpu_memory": max(e["peak_gpu_memory"] for e in log)})
        fit_idx = fit_idx[:500]
    ids_train = train[TASK["id_column"]] if TASK["id_column"] else pd.Series(rows, name="row")
    ids_test = test[TASK["id_column"]] if TASK["id_column"] else pd.Series(np.arange(len(test)), name="row")
    if multilabel:  # each label scored by the per-column metric; a probability column per label
        report["per_column"] = label_scores(y[hold_idx], hold)
        held_scores = [v for v in report["per_column"].values() if np.isfinite(v)]
        cv = float(np.mean(held_scores)) if held_scores else float("nan")
        fit_scores = [v for v in label_scores(y[fit_idx], fit_pred).values() if np.isfinite(v)]
        train_score = float(np.mean(fit_scores)) if fit_scores else float("nan")
        out = pd.DataFrame({ids_test.name: ids_test.to_numpy()})
        for k, column in enumerate(TASK["targets"]):
            out[column] = test_raw[:, k]
        out.to_csv("predictions.csv", index=False)
    else:
        cv, train_score = float(score(y[hold_idx], hold)), float(score(y[fit_idx], fit_pred))
        raw_frame(ids_train.iloc[hold_idx].reset_index(drop=True), hold).to_csv("oof.csv", index=False)
        raw_frame(ids_test, test_raw).to_csv("test_pred.csv", index=False)
        submission_frame(ids_test, test_raw).to_csv("predictions.csv", index=False)
    if net is not None:
        import torch

        os.makedirs("model", exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, os.path.join("model", "weights.pt"))
        with open(os.path.join("model", "config.json"), "w", encoding="utf-8") as fh:
            json.dump({"config": {**CONFIG, "weights": None}, "task": TASK, "in_channels": int(arrays.shape[3]),
                       "mean": norm[0], "std": norm[1], "centre": norm[2], "scale": norm[3]}, fh)
    TIMINGS["total"] = round(time.perf_counter() - started, 3)
    metrics = {"metric": TASK["metric"], "cv": cv, "cv_std": 0.0, "folds": [cv],
               "train_score": train_score, "timings": TIMINGS, **report}
    with open("metrics.json", "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=1)
    print(f"{CONFIG['model']}: holdout {TASK['metric']} {cv:.5f} in {TIMINGS['total']:.1f}s")


if __name__ == "__main__":
    main()
