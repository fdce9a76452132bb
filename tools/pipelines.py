"""The expert's experiment spec (`PipelineSpec`), `render` into a standalone script, and SELA's stage cache.

An experiment is a standalone script (DESIGN.md): someone can read it, copy
it and run it without crew. So `render` does not emit calls into crew; it
copies plain pandas + scikit-learn (+ LightGBM / XGBoost / Optuna when
asked) functions out of `crew.tools.script`, one section per SELA stage,
under the knobs the critic may turn (`FOLDS`, `REPEATS`, `BAGS`,
`SUBSAMPLE`, `PARAMS`, `TUNE_TRIALS`) as top-level constants.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import shutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from crew import METRICS, Task, positive_label
from crew import parse_python as parse
from crew.tools import script
from crew.tools.catalogue import FAMILIES

__all__ = [
    "FEATURE_STEPS",
    "TUNE_ROWS",
    "PipelineSpec",
    "TaskInfo",
    "cached_stages",
    "promote_stages",
    "render",
    "rendered",
    "score_source",
    "shared_functions",
    "spec_from_report",
    "stage_blocks",
    "stage_keys",
]

EARLY_STOPPING_ROUNDS = 50
"""A booster stops after this many rounds without gain on its held-out rows."""
FIXED_ROUNDS = 300
"""A booster's rounds when a fold has too few rows to hold some out for early stopping."""
TUNE_ROWS = 20_000
"""Tuning trials fit a stratified sample of at most this many rows (cheap first); the experiment's cross-validation
and refit use every row with the parameters found."""

FEATURE_STEPS = tuple(step.__name__ for step in script.FEATURE_STEPS)
"""The feature insights the script implements (each a function of `crew.tools.script`), in the order it runs them."""


class TaskInfo(BaseModel):
    """What a script must know about the task; paths are relative to the task folder ($CREW_DATA)."""

    name: str
    train: str
    test: str
    target: str
    id_column: str | None
    metric: str
    higher_is_better: bool
    target_type: str
    classes: list[str] = Field(default_factory=list)
    positive: str | None = None
    submission: str = Field(description="label, proba or value: what the submission's target column holds")
    submission_columns: list[str]
    nonnegative: bool = Field(default=False, description="the metric needs predictions >= 0 (rmsle): the submission "
                                                           "is clipped at 0")
    decides: bool = Field(default=False, description="the metric scores labels, decided from the class probabilities "
                                                     "with weights fitted on out-of-fold predictions")
    calibrates: bool = Field(default=False, description="the metric scores the probabilities themselves (log loss): "
                                                        "they are calibrated on out-of-fold predictions")
    rows: int = Field(default=10_000, description="train rows, for defaults that depend on data size")

    @classmethod
    def from_task(cls, task: Task) -> TaskInfo:
        assert task.data is not None and task.target is not None and task.metric is not None
        info = task.metric_info
        classes = task.classes
        return cls(name=task.name, train=task.data.train, test=task.data.test, target=task.target,
                   id_column=task.id_column, metric=task.metric, higher_is_better=info.higher_is_better,
                   target_type=task.target_type or "regression", classes=classes,
                   positive=positive_label(classes) if task.target_type == "binary" else None,
                   submission=info.submission, submission_columns=task.submission_columns(),
                   nonnegative=info.nonnegative, decides=info.decides, calibrates=info.log_probabilities,
                   rows=task.shapes.get("train", (10_000, 0))[0])


class PipelineSpec(BaseModel):
    """One experiment as the expert sees it: a model family, its parameters, and one insight per stage."""

    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    preprocessing: list[str] = Field(default_factory=lambda: ["impute_median", "one_hot_low_cardinality",
                                                             "ordinal_high_cardinality"])
    features: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    datetime: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    target_encode: list[str] = Field(default_factory=list, description="categorical columns that also get "
                                                                       "out-of-fold target means")
    folds: int = Field(default=5, ge=2)
    repeats: int = Field(default=1, ge=1, description="times the k-fold split is redrawn; out-of-fold predictions "
                                                       "are averaged over them")
    seed: int = 0
    subsample: int | None = Field(default=None, description="largest number of training rows a fold fits on")
    tune_trials: int = Field(default=0, ge=0)
    tune_timeout: float = Field(default=0.0, ge=0)
    bags: int = Field(default=1, ge=1, description="models per fold, on seeds SEED, SEED+1, ...; predictions averaged")
    threads: int = Field(default=1, ge=1)
    refit: bool = Field(default=True, description="test predictions from models fitted on every training row "
                                                  "(boosters with the rounds the folds kept), not the folds' models")

    def insights(self) -> list[str]:
        extra = [f"tune_{self.tune_trials}_trials"] if self.tune_trials else []
        extra += [f"bag_of_{self.bags}"] if self.bags > 1 else []
        extra += [f"cv_{self.repeats}x{self.folds}"] if self.repeats > 1 else []
        return [*self.preprocessing, *self.features, self.model, *extra]


def _py(value: Any) -> str:
    """A Python literal for JSON-like data (json.dumps is close, but None/True/False differ)."""
    return repr(json.loads(json.dumps(value)))


@cache
def _source() -> tuple[str, list[str], dict[str, str]]:
    """The script module's source: its import block, the names of its constants and each function's code."""
    text = inspect.getsource(script)
    tree = parse(text)
    found = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    imports = "\n".join(text.splitlines()[found[0].lineno - 1:found[-1].end_lineno])
    first_function = next(n.lineno for n in tree.body if isinstance(n, ast.FunctionDef))
    constants = [target.id for n in tree.body if n.lineno < first_function
                 for target in (n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign)
                                else []) if isinstance(target, ast.Name)]
    functions = {n.name: ast.get_source_segment(text, n) or "" for n in tree.body
                 if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    return imports, constants, functions


def shared_functions(*names: str) -> str:
    """The source of `crew.tools.script`'s functions `names`, for another standalone script (one definition of
    labels and the submission's format)."""
    _, _, functions = _source()
    return "\n\n\n".join(functions[name] for name in names)


def _renamed(code: str, name: str) -> str:
    """A variant's code under the plain name the script calls it by."""
    return re.sub(r"^def \w+\(", f"def {name}(", code, count=1)


_LOADING = ("canonical", "read", "numbers", "parse_dates", "load_data", "encode_target")
_EVALUATION = ("splitter", "holdout", "fit_pipeline", "predict_raw", "target_forward", "target_back", "values",
               "cross_validate", "temperature", "calibrated", "fit_weights", "decision", "decided", "fold_scores")
_OUTPUT = ("refit_rounds", "refit", "_vectorizers", "_saveable", "load_skops", "save_model", "tune", "submission_frame", "raw_frame", "threads_for", "main")


def score_source(info: TaskInfo) -> str:
    """The experiment script's `score(y, raw)`: the task's metric, its body the metric's own template."""
    return ('def score(y, raw):\n    """The task\'s metric (' + info.metric + ") on encoded targets and raw predictions "
            '(class probabilities or values)."""\n    from sklearn import metrics\n' + METRICS[info.metric].template)


def _model_code(spec: PipelineSpec, info: TaskInfo) -> str:
    """`make_model` for the family and kind of target, after the private helpers it calls, and `fit_model`."""
    _, _, functions = _source()
    kind = "regression" if info.target_type == "regression" else "classification"
    code = _renamed(functions[f"make_model__{spec.model}__{kind}"], "make_model")
    helpers = [functions[name] for name in functions if name.startswith("_") and re.search(rf"\b{name}\(", code)]
    fit = _renamed(functions.get(f"fit__{spec.model}", functions["fit__plain"]), "fit_model")
    return "\n\n\n".join([*helpers, code, fit])


def stage_blocks(spec: PipelineSpec, info: TaskInfo) -> dict[str, str]:
    """The code of each SELA stage, as `render` writes it under its `# ---- stage: ... ----` line."""
    _, _, functions = _source()
    chosen = [f for f in spec.features if f in FEATURE_STEPS]
    features = [*(functions[f] for f in chosen), f"FEATURE_STEPS = [{', '.join(chosen)}]", functions["add_features"]]
    evaluation = [score_source(info), *(functions[f] for f in _EVALUATION),
                  _renamed(functions[f"space__{spec.model}"], "search_space"), *(functions[f] for f in _OUTPUT)]
    preprocessing = [*(functions[f] for f in _LOADING), functions["preprocessor"]]
    if _native(spec):
        preprocessing.append(functions["NativeCategories"])
    if _nb_weights(spec):
        preprocessing.append(functions["NBWeights"])
    return {"preprocessing": "\n\n\n".join(preprocessing),
            "feature_engineering": "\n\n\n".join(features),
            "model": _model_code(spec, info),
            "evaluation": "\n\n\n".join(evaluation)}


def _nb_weights(spec: PipelineSpec) -> bool:
    """Whether the text n-grams are scaled by NB-SVM's log-count ratios (a classification target's)."""
    return bool(spec.text) and "text_ngrams" in spec.features and "nb_weights" in spec.features


def _native(spec: PipelineSpec) -> str:
    """How the experiment's model takes categories natively: CatBoost always as codes, the other boosters as pandas
    categories when the spec asks for `native_categories`, else not at all ("")."""
    family = FAMILIES[spec.model]
    if family.native_categories == "codes" or "native_categories" in spec.preprocessing:
        return family.native_categories
    return ""


def _constants(spec: PipelineSpec, info: TaskInfo) -> dict[str, Any]:
    family = FAMILIES[spec.model]
    params = spec.params or family.params(rows=info.rows, regression=info.target_type == "regression")
    columns = {"numeric": spec.numeric, "categorical": spec.categorical, "datetime": spec.datetime,
               "text": spec.text, "drop": spec.drop}
    prep = spec.preprocessing
    # A model that splits on missing values gets them as they are ("was missing" is information); one that cannot
    # gets the median and a 0/1 column saying so.
    preprocess = {"impute": not family.handles_nan,
                  "indicators": "missing_indicators" in prep or not family.handles_nan,
                  "scale": family.scaled or "scale_numeric" in prep,
                  "one_hot": family.scaled and "one_hot_low_cardinality" in prep,
                  "native": _native(spec), "target_encode": spec.target_encode,
                  "sparse_text": list(spec.text) if "text_ngrams" in spec.features else [],
                  "nb_weights": _nb_weights(spec)}
    early = EARLY_STOPPING_ROUNDS if family.rounds_key else 0
    log_target = info.target_type == "regression" and ("log_target" in spec.features or METRICS[info.metric].nonnegative)
    return {"TASK": info.model_dump(), "COLUMNS": columns, "PREPROCESS": preprocess, "FOLDS": spec.folds,
            "REPEATS": spec.repeats, "SEED": spec.seed, "SUBSAMPLE": spec.subsample, "THREADS": spec.threads,
            "PARAMS": params, "TUNE_TRIALS": spec.tune_trials, "TUNE_TIMEOUT": spec.tune_timeout, "TUNE_ROWS": TUNE_ROWS,
            "BAGS": spec.bags,
            "EARLY_STOPPING": early, "FIXED_ROUNDS": FIXED_ROUNDS, "ROUNDS_KEY": family.rounds_key,
            "REFIT": spec.refit, "LOG_TARGET": log_target, "STAGE_KEYS": {}, "TIMINGS": {}, "STAGE_CACHE": {}}


def _stage_keys(spec: PipelineSpec, info: TaskInfo, constants: Mapping[str, Any]) -> dict[str, str]:
    """SELA's stage-cache keys, from the structured spec: a stage's key covers everything that feeds it (the
    task, the columns, the seed, the features; for tuning also the family, metric, folds and trials) and the
    code of the functions that compute it, so that a crew whose script changed never reads an old result."""
    _, _, functions = _source()
    chosen = [f for f in spec.features if f in FEATURE_STEPS]
    features = _digest(_py(constants["TASK"]), _py(constants["COLUMNS"]), spec.seed, chosen,
                       *(functions[f] for f in (*_LOADING, *chosen, "add_features")))
    keys = {"features": features}
    if spec.tune_trials:
        blocks = stage_blocks(spec, info)
        keys["tune"] = _digest(features, _py(constants["PREPROCESS"]), constants["LOG_TARGET"],
                               _py(constants["PARAMS"]), spec.folds, spec.repeats, spec.subsample, spec.tune_trials,
                               spec.tune_timeout, constants["TUNE_ROWS"], blocks["preprocessing"], blocks["model"], blocks["evaluation"])
    return keys


def render(spec: PipelineSpec, info: TaskInfo | Task) -> str:
    """The experiment script for `spec` on the task: its constants, then the functions of `crew.tools.script`
    it needs, one section per SELA stage."""
    if isinstance(info, Task):
        info = TaskInfo.from_task(info)
    if spec.model not in FAMILIES:
        raise ValueError(f"unknown model family {spec.model!r}; known: {', '.join(FAMILIES)}")
    imports, names, functions = _source()
    constants = _constants(spec, info)
    constants["STAGE_KEYS"] = _stage_keys(spec, info, constants)
    assert list(constants) == names, f"crew.tools.script's constants {names} are not the ones render sets"
    header = (f'"""crew experiment: {", ".join(spec.insights())}\n\n'
              "Written by crew's modeler from its pipeline catalogue. Standalone: reads the task's data from\n"
              "$CREW_DATA (read-only), cross-validates, and writes metrics.json, oof.csv (out-of-fold predictions),\n"
              'test_pred.csv (the same for the test set) and predictions.csv (the submission).\n"""\n')
    sections = [header + imports, "\n".join(f"{name} = {_py(value)}" for name, value in constants.items()),
                *(functions[f] for f in ("cached_stage", "_plain", "save_stage", "load_stage"))]
    sections += [f"# ---- stage: {stage} ----\n{code}" for stage, code in stage_blocks(spec, info).items()]
    sections.append('if __name__ == "__main__":\n    main()')
    return "\n\n\n".join(sections) + "\n"


def _digest(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:20]


def stage_keys(code: str) -> dict[str, str]:
    """The `STAGE_KEYS` literal of an experiment script (empty for code that has none, e.g. an LLM's)."""
    try:
        tree = parse(code)
    except SyntaxError:
        return {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "STAGE_KEYS" for t in node.targets)):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}


def cached_stages(code: str, folder: str | os.PathLike[str] | None) -> list[str]:
    """Stages of `code` whose results already sit in the stage cache `folder`: they will be loaded, not run."""
    if not folder:
        return []
    return [stage for stage, key in stage_keys(code).items()
            if os.path.exists(os.path.join(folder, f"{stage}-{key}", "manifest.json"))]


_STAGE_FILE = re.compile(r"item\d{1,3}\.(parquet|npy)")
_MANIFEST_BYTES = 4 * 1024**2


def rendered(code: str, spec: Mapping[str, Any], info: TaskInfo | Task) -> bool:
    """Whether `code` is exactly crew's own script for `spec`: the provenance the stage cache trusts."""
    fields = {k: v for k, v in spec.items() if k in PipelineSpec.model_fields}
    try:
        return bool(code) and render(PipelineSpec(**fields), info) == code
    except (ValueError, TypeError, KeyError):
        return False


def promote_stages(code: str, workdir: str | os.PathLike[str], cache: str | os.PathLike[str]) -> list[str]:
    """Copy the stages an experiment computed (`stages/<stage>-<key>/` in its work folder) into the run's cache,
    where later experiments read them; returns the stages promoted.

    Call it only for an experiment that finished, passed review and whose code crew rendered itself (`render` of
    its spec): the key names the code that computed the stage, and code crew did not write could claim any key.
    The copy is bytes only (nothing is parsed but the small manifest), and the manifest crew writes records the
    SHA-256 of every file, which the loading script checks. A stage already in the cache is never replaced.
    """
    promoted = []
    for stage, key in stage_keys(code).items():
        name = f"{stage}-{key}"
        source, target = Path(workdir) / "stages" / name, Path(cache) / name
        manifest_path = source / "manifest.json"
        if target.exists() or not manifest_path.is_file() or manifest_path.is_symlink() \
                or manifest_path.stat().st_size > _MANIFEST_BYTES:
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            files = [item["file"] for item in manifest["items"] if item["kind"] != "json"]
        except (ValueError, KeyError, TypeError):
            continue
        if not all(isinstance(f, str) and _STAGE_FILE.fullmatch(f) and (source / f).is_file()
                   and not (source / f).is_symlink() for f in files):
            continue
        staging = Path(cache) / f".{name}.{os.getpid()}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        digests = {}
        for file in files:
            shutil.copyfile(source / file, staging / file, follow_symlinks=False)
            digests[file] = hashlib.sha256((staging / file).read_bytes()).hexdigest()
        (staging / "manifest.json").write_text(json.dumps({**manifest, "sha256": digests}), encoding="utf-8")
        try:
            staging.rename(target)
            promoted.append(stage)
        except OSError:  # a twin promoted it first
            shutil.rmtree(staging, ignore_errors=True)
    return promoted


def spec_from_report(model: str, report: Mapping[str, Any], **fields: Any) -> PipelineSpec:
    """A spec whose column lists come from the analyst's data report."""
    drop = list(report.get("drop_columns", []))
    if "drop_leakage_suspects" in fields.get("preprocessing", ()):
        drop += list(report.get("leakage_suspects", []))
    categorical = list(report.get("categorical_columns", []))
    if "target_encoding" in fields.get("features", ()):
        fields["target_encode"] = [c for c in report.get("high_cardinality_columns", []) if c in categorical]
    return PipelineSpec(model=model, numeric=list(report.get("numeric_columns", [])), categorical=categorical,
                        datetime=list(report.get("datetime_columns", [])), text=list(report.get("text_columns", [])),
                        drop=drop, **fields)
