"""The critic's cost model: what an experiment will cost in time and memory, from its code, the data and history.

Two layers. A *prior* per model family (`PRIORS`, measured on a 2-core
machine by `bench/cost_priors.py`) turns the workload read from the code's
syntax tree -- families, estimators, folds, tuning trials, row subsample --
and the data's size into seconds and bytes. An online *correction* then
learns from every finished experiment on the blackboard how far off the
prior was on this machine, for this family and overall, so that estimates
converge within a run. Every estimate says what it was based on.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from crew import Blackboard
from crew import parse_python as parse
from crew.tools.catalogue import FAMILIES
from crew.tools.knobs import KNOB_NAMES

__all__ = [
    "PRIORS",
    "CostModel",
    "Estimate",
    "FamilyPrior",
    "Observation",
    "Workload",
    "calibration",
    "deep_units",
    "history",
    "read_media_workload",
    "read_normalizer_workload",
    "read_workload",
]

_FAMILY_OF = {
    # estimators chat models' scripts use besides the catalogue's own (added below)
    "LogisticRegressionCV": "linear", "RidgeCV": "linear",
    "RidgeClassifier": "linear", "Lasso": "linear", "ElasticNet": "linear", "LinearRegression": "linear",
    "SGDClassifier": "linear", "SGDRegressor": "linear", "LinearSVC": "linear", "LinearSVR": "linear",
    "NuSVC": "svm", "NuSVR": "svm",
    "GradientBoostingClassifier": "gradient_boosting", "GradientBoostingRegressor": "gradient_boosting",
    "LGBMRanker": "lightgbm",
    "CatBoostClassifier": "catboost", "CatBoostRegressor": "catboost",
    "MLPClassifier": "mlp", "MLPRegressor": "mlp",
    **{path.rpartition(".")[2]: family.name for family in FAMILIES.values()
       for path in (family.classifier, family.regressor)},
}
_ESTIMATOR_KEYS = KNOB_NAMES["estimators"][1]
_FOLD_CONSTANTS = KNOB_NAMES["folds"][0]
_TRIAL_CONSTANTS = KNOB_NAMES["tune_trials"][0]
_SUBSAMPLE_CONSTANTS = KNOB_NAMES["subsample"][0]
_BAG_CONSTANTS = KNOB_NAMES["bags"][0]
_REPEAT_CONSTANTS = KNOB_NAMES["repeats"][0]
_BOOSTERS = {"hist_gradient_boosting", "lightgbm", "xgboost", "gradient_boosting", "catboost"}
"""Families whose multi-class fits grow one tree per class and round (chat models' scripts use more than the
catalogue's)."""
MiB = 1024**2


@dataclass(frozen=True)
class FamilyPrior:
    """Seconds per fit = scale * (fixed + per_unit * units ** power), units = training rows x features.

    `estimators` is the number the measurement used; more or fewer scale
    time linearly. `bytes_per_row_tree` is the memory forests keep per
    training row and tree.
    """

    fixed: float
    per_unit: float
    power: float
    estimators: int = 1
    startup: float = 0.0
    bytes_per_row_tree: float = 0.0
    quadratic_rows: bool = False


PRIORS: dict[str, FamilyPrior] = {
    "linear": FamilyPrior(fixed=0.038, per_unit=4.8e-7, power=1.10),
    "knn": FamilyPrior(fixed=0.034, per_unit=2.9e-6, power=1.10),
    "svm": FamilyPrior(fixed=0.061, per_unit=7.9e-9, power=1.07, quadratic_rows=True),
    "random_forest": FamilyPrior(fixed=0.65, per_unit=1.8e-5, power=1.10, estimators=300, bytes_per_row_tree=20.0),
    "extra_trees": FamilyPrior(fixed=0.31, per_unit=1.3e-4, power=0.91, estimators=300, bytes_per_row_tree=55.0),
    "hist_gradient_boosting": FamilyPrior(fixed=0.29, per_unit=2.6e-4, power=0.70, estimators=300),
    "gradient_boosting": FamilyPrior(fixed=0.10, per_unit=2.0e-5, power=1.0, estimators=100),
    "lightgbm": FamilyPrior(fixed=0.15, per_unit=6.3e-5, power=0.85, estimators=400, startup=0.2),
    "xgboost": FamilyPrior(fixed=0.15, per_unit=1.7e-5, power=0.93, estimators=400, startup=0.1),
    "catboost": FamilyPrior(fixed=1.5, per_unit=2.5e-4, power=1.0, estimators=1000, startup=0.5),
    "mlp": FamilyPrior(fixed=0.5, per_unit=3.0e-5, power=1.0, estimators=200),
    "unknown": FamilyPrior(fixed=0.5, per_unit=4.0e-5, power=1.0),
}
"""Measured with one thread per experiment inside the sandbox (`bench/cost_priors.py`); catboost (a catalogue
family since issue 20) from one hand measurement (1000 rounds on 400 rows x 30 columns: 4.6 s), gradient_boosting,
mlp and unknown are rough guesses; the online correction fixes all of them within a run."""

_STARTUP = 1.9  # interpreter, pandas and scikit-learn imports, reading a small csv
_NGRAM_SECONDS_PER_CHAR = 2.1e-6
"""Word (1-2) and character (2-5) n-gram TF-IDF, fitted on a fold's train rows and applied to its held-out and
test rows: seconds per character read (2.0-2.3e-6 on bench/text_tasks.py's two tasks, `bench/text_cost.py`)."""
_NGRAM_NONZEROS_PER_CHAR = 2.2
"""Non-zero n-gram features per character of text (1.8 on reviews, 2.2 on authors)."""
_SPARSE_FIT_SECONDS_PER_NONZERO = 8e-7
"""A linear model's fit on sparse n-grams, per non-zero (3.4e-7 binary, 1.3e-6 three classes)."""
_SVD_SECONDS_PER_CHAR = 6e-7
"""text_tfidf: a 5,000-term word TF-IDF of train and test reduced by SVD, once per experiment (5-7e-7)."""
_NORMALIZER_SECONDS_PER_ROW = {"tokens": 1.0e-6, "shapes": 3.5e-6, "context": 5.5e-6}
_NORMALIZER_BYTES_PER_ROW = {"tokens": 190.0, "shapes": 190.0, "context": 300.0}
"""A seq2seq experiment per train and test token, read, learnt and predicted: on 2.1 million tokens the token
table took 2.9 s and 508 MiB, with shape fall-backs 7.9 s, with context 11.9 s and 728 MiB (2 cores)."""
_NORMALIZER_STARTUP = 1.5
_SPARSE_BYTES_PER_NONZERO = 36.0
"""A sparse matrix's 12 bytes per non-zero, about three copies alive (the blocks, their stack, a fold's slice)."""
_STARTUP_PER_CELL = 1.5e-6  # reading and encoding each train+test cell
_BASE_MEMORY = 115 * MiB
_BYTES_PER_CELL = 80.0  # pandas frames, encoded copies and fold slices of each cell


class Workload(BaseModel):
    """What the code will do, as far as its syntax tree and the data say."""

    families: list[str] = Field(default_factory=list)
    estimators: int | None = None
    folds: int = 1
    tune_trials: int = 0
    tune_folds: int = 3
    repeats: int = 1
    bags: int = 1
    subsample: int | None = None
    rows: int = 0
    test_rows: int = 0
    columns: int = 1
    classes: int = 1
    threads: int = 1
    early_stopping: bool = False
    """Boosters stop early: the estimators read are a cap, of which `EARLY_STOPPED_SHARE` is the expected use."""
    refit: bool = False
    """Test predictions come from one more fit per bag on every row."""
    tune_rows: int | None = None
    """Tuning trials fit a sample of at most this many rows (the script's TUNE_ROWS)."""
    text_columns: list[str] = Field(default_factory=list)
    """The text columns the code reads (its COLUMNS["text"])."""
    sparse_text: bool = False
    """Each fit builds word and character n-gram TF-IDF of the text (PREPROCESS["sparse_text"])."""
    text_svd: bool = False
    """The features include text_tfidf: a TF-IDF reduced by SVD, built once."""
    text_chars_per_row: float = 0.0
    """Characters of text per train or test row, over `text_columns` (the critic reads it from the data)."""
    normalizer: Literal["", "tokens", "shapes", "context"] = ""
    """A seq2seq experiment (`crew.tools.normalizer`): how far up its ladder it goes; its cost is per token."""
    deep: str = ""
    """A media experiment (`crew.tools.vision`): its model, `boosted` or a network (`cnn`, `resnet18`, ...)."""
    epochs: int = 0
    image_size: int = 0
    channels: int = 3
    batch: int = 64
    views: int = 1
    """Predictions average this many views of each file (test-time augmentation)."""
    decode: bool = True
    """The files are decoded in this experiment (no checked array store of this size is shared yet)."""
    device: Literal["cpu", "cuda"] = "cpu"
    image_seconds: float | None = None
    """Seconds one training image of 64 x 64 costs per epoch on this machine, as earlier experiments of this network
    timed their epochs (`deep_units`); None: the prior."""
    gpu_bytes_per_pixel: float | None = None
    """Peak GPU bytes per batch pixel earlier experiments of this network measured; None: the prior."""
    crops: int = 0
    """An image-to-image denoiser's training crops per epoch (`crop` pixels a side); `image_size` is then the pages'
    typical side, and `rows` and `test_rows` count pages."""
    crop: int = 0

    @property
    def family(self) -> str:
        """The family that dominates cost: the most expensive one the code builds."""
        if not self.families:
            return "unknown"
        return max(self.families, key=lambda f: _prior_fit_seconds(PRIORS.get(f, PRIORS["unknown"]), self, f))

    @property
    def fits(self) -> int:
        return (self.folds * self.repeats * self.bags + self.tune_trials * min(self.folds, self.tune_folds)
                + (self.bags if self.refit else 0))

    @property
    def fit_units(self) -> float:
        """`fits` in fits of `rows_per_fit` rows: a tuning trial on a sample of rows costs its share of one."""
        share = min(1.0, self.tune_rows / max(1, self.rows)) if self.tune_rows else 1.0
        tuning = self.tune_trials * min(self.folds, self.tune_folds)
        return self.fits - tuning + tuning * share

    @property
    def rows_per_fit(self) -> int:
        rows = int(self.rows * (self.folds - 1) / self.folds) if self.folds > 1 else self.rows
        return min(rows, self.subsample) if self.subsample else rows


EARLY_STOPPED_SHARE = 0.3
"""The share of their round cap early-stopped boosters use, before the online correction learns this run's."""


def _prior_fit_seconds(prior: FamilyPrior, work: Workload, family: str) -> float:
    estimators = float(work.estimators or prior.estimators)
    if work.early_stopping and family in _BOOSTERS:
        estimators = max(1.0, estimators * EARLY_STOPPED_SHARE)
    scale = estimators / prior.estimators if prior.estimators > 1 else 1.0
    if family in _BOOSTERS and work.classes > 2:
        scale *= work.classes  # one tree per class per boosting round
    units = float(work.rows_per_fit) * max(1, work.columns)
    if prior.quadratic_rows:
        units *= work.rows_per_fit
    threads = max(1, work.threads) ** 0.7  # parallel speed-up is never linear
    return scale * (prior.fixed + prior.per_unit * units**prior.power) / threads


def _text_cost(work: Workload) -> tuple[float, float]:
    """Seconds and bytes the text features add: n-grams built and a sparse model fitted in every fit, an SVD
    reduction once."""
    per_row = work.text_chars_per_row
    if not per_row or not (work.sparse_text or work.text_svd):
        return 0.0, 0.0
    seconds = memory = 0.0
    if work.sparse_text:
        read = per_row * (work.rows_per_fit + work.rows / max(1, work.folds) + work.test_rows)
        nonzeros = _NGRAM_NONZEROS_PER_CHAR * per_row * work.rows_per_fit
        seconds += work.fit_units * (_NGRAM_SECONDS_PER_CHAR * read + _SPARSE_FIT_SECONDS_PER_NONZERO * nonzeros
                                     * max(1, work.classes - 1) ** 0.5) / max(1, work.threads) ** 0.3
        memory += _SPARSE_BYTES_PER_NONZERO * _NGRAM_NONZEROS_PER_CHAR * per_row * (work.rows_per_fit + work.test_rows)
    if work.text_svd:
        seconds += _SVD_SECONDS_PER_CHAR * per_row * (work.rows + work.test_rows)
    return seconds, memory


class Estimate(BaseModel):
    """A cost estimate and what it was based on; stored on the experiment next to what really happened."""

    seconds: float
    memory: int
    family: str
    prior_seconds: float
    prior_memory: int
    time_correction: float = 1.0
    memory_correction: float = 1.0
    basis: str
    workload: Workload
    gpu_memory: int = 0
    """Bytes of GPU memory a network will hold at its peak: what its GPU slot is declared with."""


class Observation(BaseModel):
    """A finished experiment as the cost model learns from it: its prior estimate and the actual cost."""

    family: str
    prior_seconds: float
    seconds: float
    prior_memory: int | None = None
    memory: int | None = None


def _constant(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def read_workload(code: str, *, rows: int, test_rows: int = 0, columns: int = 1, classes: int = 1,
                  threads: int = 1) -> Workload:
    """Read families, estimators, folds, tuning and subsampling from the code's syntax tree."""
    try:
        tree = parse(code)
    except SyntaxError:
        return Workload(rows=rows, test_rows=test_rows, columns=columns, classes=classes, threads=threads)
    families: list[str] = []
    estimators: list[int] = []
    folds: int | None = None
    trials = 0
    bags = repeats = 1
    subsample: int | None = None
    early_stopping = refit = False
    tune_rows: int | None = None
    splitter_seen = False
    text_columns: list[str] = []
    sparse_text = text_svd = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, _constant(node.value)
            if name in _FOLD_CONSTANTS and isinstance(value, int):
                folds = value
            elif name in _TRIAL_CONSTANTS and isinstance(value, int):
                trials = value
            elif name in _SUBSAMPLE_CONSTANTS and isinstance(value, int):
                subsample = value
            elif name in _BAG_CONSTANTS and isinstance(value, int) and value >= 1:
                bags = value
            elif name in _REPEAT_CONSTANTS and isinstance(value, int) and value >= 1:
                repeats = value
            elif name == "EARLY_STOPPING" and isinstance(value, int):
                early_stopping = value > 0
            elif name == "REFIT" and isinstance(value, bool):
                refit = value
            elif name == "TUNE_ROWS" and isinstance(value, int) and value > 0:
                tune_rows = value
            elif name == "COLUMNS" and isinstance(value, dict) and isinstance(value.get("text"), list):
                text_columns = [str(c) for c in value["text"]]
            elif name == "PREPROCESS" and isinstance(value, dict):
                sparse_text = bool(value.get("sparse_text"))
            elif name == "FEATURE_STEPS" and isinstance(node.value, ast.List):
                text_svd = any(isinstance(e, ast.Name) and e.id == "text_tfidf" for e in node.value.elts)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in _ESTIMATOR_KEYS and isinstance(_constant(value), int):
                    estimators.append(int(_constant(value)))
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in _FAMILY_OF and _FAMILY_OF[name] not in families:
                families.append(_FAMILY_OF[name])
            if name in ("KFold", "StratifiedKFold", "GroupKFold", "RepeatedKFold", "RepeatedStratifiedKFold",
                        "cross_val_score", "cross_validate", "cross_val_predict"):
                splitter_seen = True
        if isinstance(node, ast.alias):
            top = node.name.split(".")[-1]
            if top in _FAMILY_OF and _FAMILY_OF[top] not in families:
                families.append(_FAMILY_OF[top])
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = _constant(keyword.value)
                if keyword.arg in _ESTIMATOR_KEYS and isinstance(value, int):
                    estimators.append(value)
                elif keyword.arg in ("n_splits", "cv") and isinstance(value, int) and folds is None:
                    folds = value
                elif keyword.arg == "n_trials" and isinstance(value, int) and not trials:
                    trials = value
                elif keyword.arg == "n_repeats" and isinstance(value, int) and value >= 1 and repeats == 1:
                    repeats = value
    if folds is None:
        folds = 5 if splitter_seen else 1
    return Workload(families=families, estimators=max(estimators) if estimators else None, folds=max(1, folds),
                    tune_trials=trials, repeats=repeats, bags=bags, subsample=subsample, rows=rows, test_rows=test_rows, columns=columns,
                    classes=classes, threads=threads, early_stopping=early_stopping, refit=refit, tune_rows=tune_rows,
                    text_columns=text_columns, sparse_text=sparse_text and bool(text_columns),
                    text_svd=text_svd and bool(text_columns))


def read_normalizer_workload(code: str, *, rows: int, test_rows: int = 0) -> Workload:
    """A seq2seq experiment's workload: its CONFIG says whether it learns shape fall-backs and context."""
    config: dict[str, Any] = {}
    try:
        for node in parse(code).body:
            if isinstance(node, ast.AnnAssign | ast.Assign):
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                if isinstance(target, ast.Name) and target.id == "CONFIG" and node.value is not None:
                    config = _constant(node.value) or {}
    except SyntaxError:
        pass
    level: Literal["tokens", "shapes", "context"] = (
        "context" if config.get("context") else "shapes" if config.get("shapes") else "tokens")
    return Workload(families=["normalizer"], rows=rows, test_rows=test_rows, normalizer=level)


_DEEP_IMAGE_SECONDS = {"cnn": 0.0094, "resnet18": 0.0104, "resnet34": 0.021, "denoiser": 0.025}
"""Core-seconds one 64 x 64 training image costs per epoch on the CPU, forward and backward with augmentation
(measured on a 2-core machine: 4.7 ms and 5.2 ms with two threads); a GPU is `_GPU_SPEEDUP` times faster."""
_GPU_SPEEDUP = 40.0
_DEEP_STARTUP = 3.0  # importing torch, reading the tables
_DECODE_SECONDS = 0.002  # core-seconds to open, decode and resize one file (a 256-pixel JPEG; a PNG is quicker)
_DEEP_MEMORY = {"boosted": 250 * MiB, "cnn": 700 * MiB, "resnet18": 900 * MiB, "resnet34": 1000 * MiB}
_GPU_CONTEXT = 600 * MiB  # the CUDA context and allocator slack, which torch's own peak does not count
_GPU_BYTES_PER_PIXEL = {"cnn": 450.0, "resnet18": 300.0, "resnet34": 450.0, "denoiser": 1200.0}
_PIXEL_FEATURE_SECONDS = 1.8e-6  # one pixel's neighbourhood features (crew.tools.denoise), mostly on one core
_PIXEL_TREE_ROW_SECONDS = 2.4e-7  # core-seconds of one LightGBM tree per sampled pixel (56 features)
_PIXEL_PREDICT_SECONDS = 2.8e-8  # core-seconds of one tree predicting one pixel
_PIXEL_WRITE_SECONDS = 2.5e-7  # keying and writing one held-out or test pixel's row of oof.csv or predictions.csv
# (polars, column-wise: 0.14 us measured)
# measured on a 2-core machine on 540 x 420 pages (the denoiser: 12.7 ms a 64 x 64 crop with two threads in an
# experiment, cropping included)
"""Peak GPU bytes per input pixel of a training batch (activations kept for the backward pass, mixed precision)."""
_BOOSTED_TREE_ROW_SECONDS = 2.5e-6  # one LightGBM tree on ~70 summary features, per training row
_PARAMETERS = {"cnn": 1.2e6, "resnet18": 11.7e6, "resnet34": 21.8e6}


def read_media_workload(code: str, *, rows: int, test_rows: int = 0, threads: int = 1, decode: bool = True,
                        device: Literal["cpu", "cuda"] = "cpu", units: dict[str, dict[str, float]] | None = None
                        ) -> Workload:
    """A media experiment's workload: its CONFIG's model, epochs, image size, batch and test-time views, and what
    earlier experiments of the same network on the same device measured (`units`, from `deep_units`)."""
    config: dict[str, Any] = {}
    task: dict[str, Any] = {}
    try:
        for node in parse(code).body:
            if isinstance(node, ast.AnnAssign | ast.Assign):
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                if isinstance(target, ast.Name) and target.id in ("CONFIG", "TASK") and node.value is not None:
                    (config if target.id == "CONFIG" else task).update(_constant(node.value) or {})
    except SyntaxError:
        pass
    model = str(config.get("model") or "cnn")
    if "format" in task:  # an image-to-image experiment (crew.tools.denoise): every pixel of every page
        deep = "pixels" if model == "boosted" else "denoiser"
        side = int(config.get("page_side") or 64)
        measured = (units or {}).get(f"{deep}@{device}", {})
        return Workload(families=[deep], rows=rows, test_rows=test_rows, threads=threads, deep=deep,
                        epochs=int(config.get("epochs") or 0), image_size=side, channels=1,
                        batch=int(config.get("batch") or 16), decode=decode, device=device,
                        subsample=int(config.get("sample") or 0) or None,
                        estimators=int(config.get("estimators") or 0) or None,
                        crops=int(config.get("patches") or 0) if deep == "denoiser" else 0,
                        crop=min(side, int(config.get("patch") or 48)),
                        image_seconds=measured.get("image_seconds"),
                        gpu_bytes_per_pixel=measured.get("gpu_bytes_per_pixel"))
    measured = (units or {}).get(f"{model}@{device}", {})
    views = 3 if config.get("tta") else 1
    return Workload(families=[model if model == "boosted" else "network"], rows=rows, test_rows=test_rows,
                    threads=threads, deep=model, classes=max(1, len(task.get("classes") or task.get("targets") or [])),
                    epochs=int(config.get("epochs") or 0),
                    image_size=int(config.get("image_size") or 64), channels=1 if task.get("kind") == "audio" else 3,
                    batch=int(config.get("batch") or 64), views=views, decode=decode, device=device,
                    image_seconds=measured.get("image_seconds"), gpu_bytes_per_pixel=measured.get("gpu_bytes_per_pixel"))


def deep_units(experiments: Iterable[Any]) -> dict[str, dict[str, float]]:
    """What finished media experiments measured, per `network@device`: seconds per 64 x 64 training image per
    epoch (their median epoch over the rows they fitted), and peak GPU bytes per batch pixel. The latest wins."""
    units: dict[str, dict[str, float]] = {}
    for exp in experiments:
        metrics = getattr(exp, "metrics", None) or {}
        epoch, rows, size = metrics.get("epoch_seconds"), metrics.get("rows_fit"), metrics.get("image_size")
        if not (epoch and rows and size) or getattr(exp, "status", "done") != "done":
            continue
        key = f"{metrics.get('model')}@{metrics.get('device', 'cpu')}"
        units[key] = {"image_seconds": float(epoch) / float(rows) / (float(size) / 64.0) ** 2}
        peak, batch = metrics.get("peak_gpu_memory"), (getattr(exp, "spec", None) or {}).get("batch", 64)
        if peak:
            units[key]["gpu_bytes_per_pixel"] = float(peak) / (float(batch) * float(size) ** 2)
    return units


def _page_cost(work: Workload) -> tuple[float, int, int]:
    """An image-to-image experiment: every page's pixels featurised and predicted by trees (`pixels`), or crops
    through the denoiser and every held-out and test page forward (`denoiser`)."""
    threads = max(1, work.threads)
    page = work.image_size ** 2
    train_pixels, test_pixels = work.rows * page, work.test_rows * page
    seconds = (_DEEP_STARTUP + 0.3 * _DECODE_SECONDS * (work.rows * 2 + work.test_rows)
               + _PIXEL_WRITE_SECONDS * (0.2 * train_pixels + test_pixels))
    if work.deep == "pixels":
        sample = min(work.subsample or 200_000, train_pixels)
        rounds = 0.6 * (work.estimators or 500)  # early stopping on the held-out pages' pixels
        seconds += (_PIXEL_FEATURE_SECONDS * (train_pixels * 1.2 + test_pixels)
                    + (_PIXEL_TREE_ROW_SECONDS * rounds * sample * 1.25
                       + _PIXEL_PREDICT_SECONDS * rounds * (0.2 * train_pixels + test_pixels)) / threads)
        return seconds, int(_DEEP_MEMORY["boosted"] + 4 * 60 * (sample * 1.25 + 2 * page) + 12 * train_pixels), 0
    if work.image_seconds is not None:
        per_crop = work.image_seconds
    else:
        per_crop = _DEEP_IMAGE_SECONDS["denoiser"] / (_GPU_SPEEDUP if work.device == "cuda" else threads)
    crops = max(work.crops, work.batch) * work.epochs * (work.crop / 64.0) ** 2
    seconds += per_crop * (crops + (0.2 * train_pixels + test_pixels) / 64.0 ** 2 * 0.4)
    memory = int(_DEEP_MEMORY["cnn"] + 8 * (train_pixels + test_pixels) + 32 * 40 * page)
    gpu = 0
    if work.device == "cuda":  # the largest page goes through whole at prediction: about as much as a batch of crops
        per_pixel = work.gpu_bytes_per_pixel or _GPU_BYTES_PER_PIXEL["denoiser"]
        gpu = int(_GPU_CONTEXT + 16 * 1e5 + per_pixel * max(work.batch * work.crop ** 2, 2 * page))
    return seconds, memory, gpu


def _deep_cost(work: Workload) -> tuple[float, int, int]:
    """Seconds, bytes of memory and bytes of GPU memory of a media experiment."""
    if work.deep in ("pixels", "denoiser"):
        return _page_cost(work)
    pixels = (work.image_size / 64.0) ** 2
    files = work.rows + work.test_rows
    seconds = _DEEP_STARTUP + (_DECODE_SECONDS * files / max(1, work.threads) if work.decode else 0.0)
    store = files * work.image_size ** 2 * work.channels
    if work.deep == "boosted":  # features from every file, then trees: one per class and round (as the script caps)
        per_round = work.classes if work.classes > 2 else 1
        trees = min(400 * per_round, max(30 * per_round, 4000))
        return (seconds + 2e-4 * files * pixels + _BOOSTED_TREE_ROW_SECONDS * trees * work.rows,
                int(_DEEP_MEMORY["boosted"] + 6 * store), 0)
    fit_rows = int(work.rows * 0.8)
    if work.image_seconds is not None:
        per_image = work.image_seconds
    else:
        per_image = _DEEP_IMAGE_SECONDS.get(work.deep, _DEEP_IMAGE_SECONDS["resnet34"]) / (
            _GPU_SPEEDUP if work.device == "cuda" else max(1, work.threads))
    predicted = (work.rows - fit_rows + work.test_rows + min(500, fit_rows)) * work.views
    seconds += per_image * pixels * (work.epochs * fit_rows + predicted / 3.0)
    memory = int(_DEEP_MEMORY.get(work.deep, _DEEP_MEMORY["resnet34"]) + 2.2 * store)
    gpu = 0
    if work.device == "cuda":
        per_pixel = work.gpu_bytes_per_pixel or _GPU_BYTES_PER_PIXEL.get(work.deep, 450.0)
        gpu = int(_GPU_CONTEXT + 16 * _PARAMETERS.get(work.deep, 25e6) + per_pixel * work.batch * work.image_size ** 2)
    return seconds, memory, gpu


def _geometric_mean(values: Iterable[float]) -> float | None:
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(logs) / len(logs)) if logs else None


class CostModel:
    """Prior x learned correction. `history` is what finished on this machine, oldest first.

    The correction for a family shrinks its own evidence towards the
    machine-wide correction (weight `shrinkage` observations), so one odd
    run does not swing the next estimate, and a family never seen before
    still benefits from what the others taught about this machine's speed.
    """

    def __init__(self, *, history: Sequence[Observation] = (), window: int = 12, shrinkage: float = 1.0,
                 memory_margin: float = 1.25):
        self.history = history
        self.window = window
        self.shrinkage = shrinkage
        self.memory_margin = memory_margin

    def prior(self, work: Workload) -> tuple[float, int]:
        """Seconds and bytes before any learning."""
        if work.deep:
            deep_seconds, deep_memory, _ = _deep_cost(work)
            return deep_seconds, deep_memory
        if work.normalizer:
            tokens = work.rows + work.test_rows
            return (_NORMALIZER_STARTUP + _NORMALIZER_SECONDS_PER_ROW[work.normalizer] * tokens,
                    int(_BASE_MEMORY + _NORMALIZER_BYTES_PER_ROW[work.normalizer] * tokens))
        family = work.family
        prior = PRIORS.get(family, PRIORS["unknown"])
        cells = (work.rows + work.test_rows) * max(1, work.columns)
        seconds = _STARTUP + prior.startup + _STARTUP_PER_CELL * cells
        seconds += sum(_prior_fit_seconds(PRIORS.get(f, PRIORS["unknown"]), work, f) for f in work.families or ["unknown"]) \
            * work.fit_units / max(1, len(work.families)) ** 0.5
        trees = (work.estimators or prior.estimators) if prior.bytes_per_row_tree else 0
        memory = _BASE_MEMORY + _BYTES_PER_CELL * cells + prior.bytes_per_row_tree * trees * work.rows_per_fit
        text_seconds, text_memory = _text_cost(work)
        seconds += text_seconds
        memory += text_memory
        if prior.quadratic_rows:
            memory += 8 * min(work.rows_per_fit, 20_000) ** 2 * 0.25  # the kernel cache grows with rows squared
        return seconds, int(memory)

    def _correction(self, family: str, pairs: list[tuple[str, float]]) -> tuple[float, str]:
        recent = pairs[-self.window:]
        overall = _geometric_mean(r for _, r in recent)
        own = [r for f, r in pairs if f == family][-self.window:]
        if overall is None:
            return 1.0, "no finished experiments yet: prior only"
        if not own:
            return overall, f"machine correction x{overall:.2f} from {len(recent)} finished experiment(s), none {family}"
        logs = [math.log(r) for r in own] + [math.log(overall)] * int(self.shrinkage)
        value = math.exp(sum(logs) / len(logs))
        return value, f"x{value:.2f} learned from {len(own)} finished {family} and {len(recent)} recent experiment(s)"

    def estimate(self, work: Workload) -> Estimate:
        prior_seconds, prior_memory = self.prior(work)
        family = work.family
        times = [(o.family, o.seconds / o.prior_seconds) for o in self.history if o.prior_seconds > 0 and o.seconds > 0]
        time_fix, time_note = self._correction(family, times)
        if work.image_seconds is not None:  # the network's own timed epochs calibrate it: no correction on top
            time_fix, time_note = 1.0, "calibrated by the epochs earlier experiments of it timed"
        elif work.deep and not any(f == family for f, _ in times):  # a tabular fit says nothing of a network's pace
            time_fix, time_note = 1.0, f"prior only: no {family} timed on this machine yet"
        memories = [o.memory / o.prior_memory for o in self.history if o.memory and o.prior_memory]
        # memory errors kill experiments, so learn only upward corrections and keep a margin
        memory_fix = max([1.0, *memories[-self.window:]])
        seconds = prior_seconds * time_fix
        memory = int(prior_memory * memory_fix * self.memory_margin)
        shape = (f"{family}: {work.fits} fit(s) of {work.rows_per_fit:,} rows x {work.columns} columns"
                 + (f", {work.estimators} estimators" if work.estimators else "")
                 + (f", text n-grams of {work.text_chars_per_row:.0f} chars/row" if work.sparse_text
                    and work.text_chars_per_row else "")
                 + (f", text SVD of {work.text_chars_per_row:.0f} chars/row" if work.text_svd
                    and work.text_chars_per_row else "")
                 + (f", {work.tune_trials} tuning trials" if work.tune_trials else ""))
        if work.normalizer:
            shape = f"normalizer ({work.normalizer}): {work.rows + work.test_rows:,} tokens"
        gpu_memory = _deep_cost(work)[2] if work.deep else 0
        if work.deep in ("pixels", "denoiser"):
            shape = (f"{work.deep} on {work.device}: {work.rows:,} + {work.test_rows:,} pages of about "
                     f"{work.image_size}x{work.image_size} pixels"
                     + (f", {work.epochs} epochs of {work.crops:,} crops of {work.crop}px" if work.crops else "")
                     + (f", {work.image_seconds * 1000:.2f} ms per 64px crop measured" if work.image_seconds else ""))
        elif work.deep:
            shape = (f"{work.deep} on {work.device}: " + (f"{work.epochs} epochs of " if work.deep != "boosted" else "")
                     + f"{work.rows:,} + {work.test_rows:,} files at {work.image_size}px"
                     + (", decoded here" if work.decode else ", decoded files shared")
                     + (f", {work.views} views" if work.views > 1 else "")
                     + (f", {work.image_seconds * 1000:.2f} ms per image-epoch measured" if work.image_seconds else ""))
        basis = f"{shape}; prior {prior_seconds:.1f}s, {time_note}"
        return Estimate(seconds=round(seconds, 3), memory=memory, family=family, prior_seconds=round(prior_seconds, 4),
                        prior_memory=prior_memory, time_correction=round(time_fix, 4), memory_correction=memory_fix,
                        basis=basis, workload=work, gpu_memory=gpu_memory)


def history(blackboard: Blackboard) -> list[Observation]:
    """Finished experiments with the critic's prior next to what they really cost, oldest first."""
    seen = []
    for exp in blackboard.experiments(status="done"):
        prior = exp.estimate.get("prior_seconds")
        if prior and exp.wall_time:
            seen.append(Observation(family=exp.estimate.get("family", "unknown"), prior_seconds=float(prior),
                                    seconds=float(exp.wall_time), prior_memory=exp.estimate.get("prior_memory"),
                                    memory=exp.peak_memory))
    return seen


def calibration(blackboard: Blackboard, *, skip: int = 3, within: float = 2.0) -> dict[str, Any]:
    """How good the time estimates were: the share of experiments (after the first `skip`) within `within`x."""
    rows = [(exp.id, float(exp.estimate["seconds"]), float(exp.wall_time))
            for exp in blackboard.experiments(status="done") if exp.estimate.get("seconds") and exp.wall_time]
    scored = rows[skip:]
    hits = [1 for _, est, actual in scored if 1 / within <= actual / est <= within]
    return {"experiments": len(rows), "scored": len(scored), "within": within,
            "share_within": (len(hits) / len(scored)) if scored else None,
            "ratios": [round(actual / est, 3) for _, est, actual in rows]}
