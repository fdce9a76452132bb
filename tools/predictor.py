"""A crew experiment's saved model (its `model.skops`), loaded without running code, predicting new rows.

An experiment written by crew's modeler (`crew.tools.script`) ends by saving
what made its test predictions: the feature steps' learned state, the
pipelines fitted on every training row, the probability temperature and the
class weights of its decision. skops stores them as data; loading rebuilds
only the types named in `TRUSTED` (scikit-learn's, which skops trusts itself,
and the boosters' estimators), so a tampered or foreign file is refused before
anything in it is built. Predicting here applies the same functions the
experiment ran (imported from `crew.tools.script`, never copied), so the
task's own test file gets back the experiment's `test_pred.csv`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crew import CrewError, LongSubmission, media_problems
from crew.tools import script
from crew.tools.profile import MISSING_MARKERS

__all__ = ["TRUSTED", "ColumnsPredictor", "DenoisePredictor", "ExperimentModel", "JointColumn", "JointMediaColumn",
           "MediaPredictor", "ModelError", "Predictor", "Seq2SeqPredictor", "load_experiment_model", "load_joint_column",
           "load_joint_network", "load_predictor", "read_rows", "save_media_predictor", "save_predictor",
           "save_seq2seq_predictor"]

TRUSTED = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor",
    "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor",
    "catboost.core.CatBoostClassifier", "catboost.core.CatBoostRegressor",
    "sklearn.model_selection._split.KFold", "sklearn.model_selection._split.StratifiedKFold",  # TargetEncoder's cv
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "sklearn.tree._tree.Tree", "numpy.dtype",
)
"""Types beyond skops' own trusted set (scikit-learn, NumPy, SciPy) that a saved model may hold."""

FORMAT = 1
"""The `format` of the payload `crew.tools.script.save_model` writes; another one is refused."""


class ModelError(CrewError):
    """A saved model that cannot be used (missing, unreadable, changed since it was saved, holding untrusted types,
    of another format), or a table it cannot read."""


class ExperimentModel:
    """One experiment's fitted model: `predict_raw(frame)` gives class probabilities (columns in `classes`) or
    values, as the experiment's `test_pred.csv` holds them; `decide(raw)` applies its class weights."""

    def __init__(self, payload: dict[str, Any], path: Path | None = None) -> None:
        self.payload = payload
        self.path = path

    @property
    def task(self) -> dict[str, Any]:
        """The experiment's `TASK` constant: target, metric, classes, submission columns."""
        return dict(self.payload["task"])

    @property
    def classes(self) -> list[str]:
        return list(self.payload["task"].get("classes") or [])

    @property
    def columns(self) -> dict[str, list[str]]:
        """The input columns by kind (numeric, categorical, datetime, text) the model reads."""
        return {k: list(v) for k, v in self.payload["features"]["columns"].items()}

    @property
    def feature_names_in(self) -> list[str]:
        kinds = self.columns
        return [c for k in ("numeric", "categorical", "datetime", "text") for c in kinds.get(k, [])]

    @property
    def class_weights(self) -> np.ndarray | None:
        weights = self.payload.get("class_weights")
        return None if weights is None else np.asarray(weights, dtype=float)

    def inputs(self, frame: pd.DataFrame) -> list[tuple[Any, Any, list[int] | None]]:
        """Each kept pipeline's estimator, its input for the rows of `frame` (numbers read, the feature steps,
        the preprocessing and native categories applied) and the class codes it was fitted on."""
        missing = [c for c in self.feature_names_in if c not in frame.columns]
        if missing:
            raise ModelError(f"the table lacks column(s) {', '.join(missing)} the model reads")
        X = frame[self.feature_names_in].reset_index(drop=True).copy()
        for c in self.columns.get("numeric", []):
            X[c] = script.numbers(X[c])
        X, _, _, _ = script.add_features(X, X.iloc[:0], self.payload["features"])
        out = []
        for part in self.payload["models"]:
            Z = part["preprocessor"].transform(X)
            if part.get("native"):
                native = script.NativeCategories(codes=bool(part["native"]["codes"]))
                native.levels_ = dict(part["native"]["levels"])
                Z = native.transform(Z)
            out.append((part["model"], Z, part["labels"]))
        return out

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (rows x classes) or values for the rows of `frame` (a table like the task's
        test file: the model's columns, any others ignored)."""
        regression = self.payload["task"]["target_type"] == "regression"
        inputs = self.inputs(frame)
        total: np.ndarray | float = 0.0
        for model, Z, labels in inputs:
            if regression:
                raw = np.asarray(model.predict(Z), dtype=float)
                raw = np.expm1(raw) if self.payload["log_target"] else raw
            else:
                raw = np.zeros((len(frame), len(self.classes)))
                codes = np.asarray(labels if labels is not None else model.classes_, dtype=int)
                raw[:, codes] = model.predict_proba(Z)
            total = total + raw / len(inputs)
        out = np.asarray(total, dtype=float)
        return script.calibrated(out, float(self.payload.get("temperature") or 1.0)) if not regression else out

    def decide(self, raw: np.ndarray) -> np.ndarray:
        """Class scores whose argmax is the label the experiment would submit (its class weights applied)."""
        weights = self.class_weights
        return raw if weights is None else raw * weights


def _trusted_payload(path: Path) -> dict[str, Any]:
    """A `model.skops` crew wrote, loaded only when every type in it is in `TRUSTED`, of format `FORMAT`."""
    sio = script.load_skops()

    if not path.is_file():
        raise ModelError(f"{path} does not exist: the experiment saved no model (see its metrics.json 'model')")
    try:
        blob = path.read_bytes()
        untrusted = [t for t in sio.get_untrusted_types(data=blob) if t not in TRUSTED]
    except Exception as exc:  # skops raises many types for a file that is not its zip format
        raise ModelError(f"{path} is not a readable skops file ({type(exc).__name__}: {exc})") from exc
    if untrusted:
        raise ModelError(f"{path} holds types crew does not trust ({', '.join(sorted(untrusted))}); not loaded")
    try:
        payload = sio.loads(blob, trusted=list(TRUSTED))
    except Exception as exc:
        raise ModelError(f"{path} could not be loaded ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a crew experiment model of format {FORMAT}")
    return payload


def load_experiment_model(path: str | Path) -> ExperimentModel:
    """Load an experiment's `model.skops` (or the folder holding it), refusing any type outside `TRUSTED`."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.skops"
    payload = _trusted_payload(path)
    _restore_vocabularies(script._vectorizers(payload["models"], payload["features"]), payload)
    return ExperimentModel(payload, path)


def _restore_vocabularies(vectorizers: list[Any], payload: dict[str, Any]) -> None:
    """Give each TF-IDF vectorizer back the vocabulary its script saved as two arrays (skops writes a dict of
    100,000 n-grams one node at a time), in the order the script listed them."""
    for vectorizer, vocabulary in zip(vectorizers, payload.get("vocabularies") or [], strict=False):
        vectorizer.vocabulary_ = dict(zip(vocabulary["terms"].tolist(), vocabulary["indices"].tolist(), strict=True))


# -- the run's predictor ------------------------------------------------------------------------------

PREDICTOR_FORMAT = 1
"""The `format` of `predictor/predictor.json`; another one is refused."""


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> dict[str, str]:
    """The versions of what fitted and reads the models, for a reader of the manifest (and a mismatch note)."""
    import importlib.metadata
    import platform

    out = {"python": platform.python_version()}
    for name in ("crew", "scikit-learn", "lightgbm", "xgboost", "catboost", "skops", "numpy", "pandas", "torch"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


class Predictor:
    """What a run hands over: the option final selection chose (one experiment, a weighted blend or a linear stack
    of several), each experiment's saved model, the labels' decision, and the columns the models were trained on.
    `predict`, `predict_proba` and `predict_raw` take a table like the task's test file; `check` says what in a
    new table does not fit; `describe` says what was chosen and why."""

    def __init__(self, manifest: dict[str, Any], members: dict[str, ExperimentModel], stacker: Any = None,
                 folder: Path | None = None) -> None:
        self.manifest = manifest
        self.members = members
        self.stacker = stacker
        self.folder = folder

    @property
    def task(self) -> dict[str, Any]:
        return dict(self.manifest["task"])

    @property
    def classes_(self) -> list[str]:
        return list(self.manifest["task"].get("classes") or [])

    @property
    def feature_names_in_(self) -> list[str]:
        return list(self.manifest["schema"])

    @property
    def regression(self) -> bool:
        return self.manifest["task"]["target_type"] == "regression"

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        """(problems, notes) of `frame` against the training schema: a missing column, text in a numeric one or a
        date column none of whose values reads as a date in the training format is a problem (the models cannot
        read it); some unreadable dates and categories never seen in training (the models treat both as missing)
        and columns the models do not read are notes. A text column reads anything."""
        problems: list[str] = []
        notes: list[str] = []
        if frame.empty:
            return ["the table has no rows"], notes
        for column, info in self.manifest["schema"].items():
            if column not in frame.columns:
                problems.append(f"column {column!r} is missing (the model reads it as {info['kind']})")
                continue
            values = frame[column]
            if info["kind"] == "numeric":
                numbers = script.numbers(values)
                bad = values[numbers.isna() & values.notna()].astype(str).str.strip()
                bad = bad[~bad.str.lower().isin(MISSING_MARKERS)]
                if len(bad):
                    examples = ", ".join(repr(v) for v in bad.unique()[:3])
                    problems.append(f"column {column!r} should hold numbers; {len(bad)} row(s) hold text such as "
                                    f"{examples}")
            elif info["kind"] == "datetime":
                fmt = next((m.payload["features"].get("date_formats", {}).get(column) for m in self.members.values()
                            if m.payload["features"].get("date_formats", {}).get(column)), None)
                when, fmt = script.parse_dates(values, fmt)
                text = values[when.isna() & values.notna()].astype(str).str.strip()
                text = text[~text.str.lower().isin(MISSING_MARKERS)]
                if len(text):
                    examples = ", ".join(repr(v) for v in text.unique()[:3])
                    line = (f"column {column!r}: {len(text)} row(s) hold values that are not dates in the training "
                            f"format ({fmt}), such as {examples}")
                    if len(text) == values.notna().sum():
                        problems.append(line)
                    else:
                        notes.append(line + " (treated as missing)")
            elif info["kind"] == "categorical" and info.get("levels") is not None:
                seen = set(info["levels"])
                unseen = sorted({str(v) for v in values.dropna().unique()} - seen)
                if unseen:
                    notes.append(f"column {column!r}: {len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} never "
                                 f"seen in training (treated as missing), e.g. {', '.join(map(repr, unseen[:3]))}")
        extra = [c for c in frame.columns if c not in self.manifest["schema"]
                 and c not in (self.manifest["task"].get("id_column"), self.manifest["task"].get("target"))]
        if extra:
            notes.append(f"column(s) {', '.join(map(repr, extra[:10]))} are not read by the model")
        return problems, notes

    def version_notes(self) -> list[str]:
        """One line per library whose version differs from the one that saved the model: the files still load
        (skops stores data, not code), but a booster or scikit-learn release can change predictions slightly."""
        saved, now = self.manifest.get("versions") or {}, _versions()
        return [f"saved with {name} {version}, read with {now.get(name, 'none')}: predictions may differ slightly "
                f"(install {name}=={version} to match the run exactly)"
                for name, version in saved.items() if now.get(name) != version]

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The chosen option's raw predictions: class probabilities (columns in `classes_`) or values."""
        from crew.tools.ensemble import stack_inputs, stack_predict

        raws = {name: member.predict_raw(frame) for name, member in self.members.items()}
        if self.manifest["kind"] == "stack":
            inputs = stack_inputs(self.regression, [raws[name] for name in self.manifest["stack"]["inputs"]])
            return stack_predict(self.stacker, inputs, 1 if self.regression else len(self.classes_))
        weights = {m["name"]: float(m["weight"]) for m in self.manifest["members"]}
        total = sum(weights[name] * raw for name, raw in raws.items())
        return np.asarray(total, dtype=float) / sum(weights.values())

    def decided(self, raw: np.ndarray) -> np.ndarray:
        weights = self.manifest.get("class_weights")
        return raw if weights is None or self.regression else raw * np.asarray(weights, dtype=float)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Labels (with the run's decision for label metrics) or values (clipped at 0 for a nonnegative metric)."""
        raw = self.predict_raw(frame)
        if self.regression:
            return np.clip(raw, 0, None) if self.manifest["task"].get("nonnegative") else raw
        return np.asarray(self.classes_, dtype=object)[self.decided(raw).argmax(axis=1)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.regression:
            raise ModelError("a regression model has no class probabilities; use predict")
        return self.predict_raw(frame)

    def submission(self, frame: pd.DataFrame, *, proba: bool = False) -> pd.DataFrame:
        """Predictions for `frame` in the task's submission format (`proba`: every class's probability instead
        of labels, for a label metric), keyed by the table's id column when it has one, else by row number."""
        task = self.task
        raw = self.predict_raw(frame)
        if proba and not self.regression:
            task["submission"] = "proba"
        return script.submission_frame(_ids(frame, task.get("id_column")), raw if proba else self.decided(raw), task)

    def describe(self) -> str:
        """What the run chose and why, which experiments it is made of, and how it was saved."""
        m = self.manifest
        lines = [f"{m['kind']} for {m['task']['name']!r}: predicts {m['task']['target']!r} "
                 f"({m['task']['target_type']}, metric {m['task']['metric']}, cv {m.get('cv')})",
                 "experiments: " + ", ".join(f"{x['name']} (weight {x['weight']:g}, "
                                               f"{', '.join(x.get('insights') or [])})" for x in m["members"]),
                 f"why: {m.get('rationale', '')}",
                 f"reads {len(m['schema'])} column(s): {', '.join(list(m['schema'])[:12])}"
                 + (" ..." if len(m["schema"]) > 12 else ""),
                 f"saved {m.get('created', '')} by crew {m['versions'].get('crew', '?')}; "
                 f"{m.get('bytes', 0) / 2**20:.1f} MB"]
        return "\n".join(lines)


def save_predictor(folder: Path, task_info: dict[str, Any], schema: dict[str, dict[str, Any]], kind: str,
                   members: list[dict[str, Any]], *, stacker: Any = None, stacked_on: list[str] | None = None,
                   class_weights: list[float] | None = None, cv: float | None = None,
                   rationale: str = "") -> dict[str, Any]:
    """Write a run's predictor into `folder`: each member's `model.skops` copied (by `members[i]["folder"]`, its
    experiment folder, so that deleting experiments loses nothing), the stacker in skops' format, and
    `predictor.json`, the manifest that names every file with its SHA-256. Returns the record a run keeps of it
    (the manifest's path and SHA-256, the folder's size). Raises ModelError when a member saved no model."""
    import datetime
    import json
    import shutil

    sio = script.load_skops()

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    records = []
    for member in members:
        source = Path(member["folder"]) / "model.skops"
        if not source.is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelError(f"experiment {member['name']} saved no model")
        target = staging / f"{member['name']}.skops"
        shutil.copyfile(source, target)
        records.append({"name": member["name"], "weight": member["weight"], "insights": member.get("insights", []),
                        "file": target.name, "sha256": _sha256(target)})
    stack = None
    if kind == "stack":
        sio.dump(stacker, staging / "stack.skops")
        stack = {"file": "stack.skops", "sha256": _sha256(staging / "stack.skops"), "inputs": list(stacked_on or [])}
    manifest = {"format": PREDICTOR_FORMAT, "kind": kind, "task": task_info, "schema": schema, "members": records,
                "stack": stack, "class_weights": class_weights, "cv": cv, "rationale": rationale,
                "versions": _versions(), "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "bytes": sum(p.stat().st_size for p in staging.iterdir())}
    (staging / "predictor.json").write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return {"saved": True, "path": str(folder / "predictor.json"), "sha256": _sha256(folder / "predictor.json"),
            "bytes": sum(p.stat().st_size for p in folder.iterdir())}


def _ids(frame: pd.DataFrame, id_column: str | None) -> pd.Series:
    """The rows' keys for a submission: the table's id column when it has one, else the row numbers."""
    if id_column and id_column in frame.columns:
        return frame[id_column].reset_index(drop=True)
    return pd.Series(np.arange(len(frame)), name="row")


class JointColumn:
    """One column of a several-target run's joint baseline (`crew.tools.multioutput`): the shared features and
    that column's linear model, applied by the functions the experiment ran."""

    def __init__(self, payload: dict[str, Any], column: str) -> None:
        self.payload = payload
        self.column = column

    @property
    def feature_names_in_(self) -> list[str]:
        return [c for kind in ("numeric", "categorical", "text") for c in self.payload["columns"][kind]]

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        return ([f"lacks column(s) {missing} that the joint model reads"] if missing else []), []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        from scipy import sparse

        from crew.tools import multioutput

        X = sparse.csr_matrix(self.payload["features"].transform(multioutput.prepared(frame, self.payload["columns"])))
        return multioutput.predict_column(self.payload["models"][self.column], X, self.payload["task"])


def load_joint_column(path: str | Path, column: str) -> JointColumn:
    """A column of the joint baseline's `model.skops`, refusing any type outside `TRUSTED`."""
    payload = _trusted_payload(Path(path))
    _restore_vocabularies([v for _, v, _ in payload["features"].transformers_
                           if type(v).__name__ == "TfidfVectorizer"], payload)
    return JointColumn(payload, column)


class JointMediaColumn:
    """One label of a several-label run's joint network (`crew.tools.vision`'s multi-label mode): the network's
    probabilities for that label. The columns of one network share it, and the last rows it predicted, so that a
    submission decodes and predicts each file once for every label."""

    def __init__(self, network: MediaPredictor, column: str) -> None:
        self.network = network
        self.column = column

    @property
    def feature_names_in_(self) -> list[str]:
        return self.network.feature_names_in_

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        return self.network.check(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        network = self.network
        if network._last is None or network._last[0] is not frame:
            network._last = (frame, network.predict_raw(frame))
        return network._last[1][:, list(network.task["targets"]).index(self.column)]


def load_joint_network(folder: str | Path, column: str, networks: dict[str, MediaPredictor] | None = None
                       ) -> JointMediaColumn:
    """A label of the joint network an experiment saved in `folder` (model/: config.json and weights.pt, tensors
    only); `networks`: those already loaded, by folder, which the label shares."""
    key = str(folder)
    network = (networks or {}).get(key)
    if network is None:
        if not (Path(folder) / "config.json").is_file() or not (Path(folder) / "weights.pt").is_file():
            raise ModelError(f"{folder} holds no joint network (config.json and weights.pt)")
        network = MediaPredictor({"experiment": "joint"}, Path(folder))
        if network.task.get("target_type") != "multilabel" or column not in (network.task.get("targets") or []):
            raise ModelError(f"{folder} is not a joint network with a label {column!r}")
        if networks is not None:
            networks[key] = network
    return JointMediaColumn(network, column)


class ColumnsPredictor:
    """A several-target run's model: one `Predictor` (or `MediaPredictor`, for files) per column (each column's own
    run under `targets/`), or the constant a column with one value in train keeps; `submission` puts the columns
    side by side, or one row per cell when the task's submission is `long` (its `LongSubmission`)."""

    def __init__(self, columns: dict[str, Predictor | MediaPredictor | JointColumn | JointMediaColumn | float],
                 id_column: str | None, long: LongSubmission | None = None) -> None:
        self.columns = columns
        self.id_column = id_column
        self.long = long

    @property
    def feature_names_in_(self) -> list[str]:
        return sorted({c for p in self.columns.values() if isinstance(p, Predictor | MediaPredictor | JointMediaColumn)
                       for c in p.feature_names_in_})

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        """Every column's model's problems and notes, each said once."""
        problems: list[str] = []
        notes: list[str] = []
        for predictor in self.columns.values():
            if isinstance(predictor, Predictor | MediaPredictor | JointColumn | JointMediaColumn):
                more, said = predictor.check(frame)
                problems += [p for p in more if p not in problems]
                notes += [n for n in said if n not in notes and "not read by the model" not in n]
        return problems, notes

    def version_notes(self) -> list[str]:
        return sorted({n for p in self.columns.values() if isinstance(p, Predictor | MediaPredictor) for n in p.version_notes()})

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """One column per target, in the task's order: a probability of 1 (several labels) or a value."""
        return np.column_stack([p.submission(frame).iloc[:, -1].to_numpy(dtype=float) if isinstance(p, Predictor | MediaPredictor)
                                else p.predict(frame) if isinstance(p, JointColumn | JointMediaColumn)
                                else np.full(len(frame), p, dtype=float) for p in self.columns.values()])

    def submission(self, frame: pd.DataFrame, *, proba: bool = False) -> pd.DataFrame:
        """Every column's predictions beside the rows' ids, or as one row per (row, column) cell keyed as the
        task's long submission keys them (`proba` changes nothing: each column of several labels is already a
        probability)."""
        import polars as pl

        ids = _ids(frame, self.id_column)
        out = pd.DataFrame({ids.name: ids})
        for name, values in zip(self.columns, self.predict(frame).T, strict=True):
            out[name] = values
        if self.long is None:
            return out
        return self.long.melt(pl.from_pandas(out), str(ids.name), list(self.columns)).to_pandas()

    def describe(self) -> str:
        return "\n".join(f"{name}: " + (p.describe().splitlines()[0] if isinstance(p, Predictor | MediaPredictor) else
                                        "the joint baseline's linear model" if isinstance(p, JointColumn) else
                                        "the joint network (a sigmoid per label)" if isinstance(p, JointMediaColumn) else
                                        f"the constant {p:g}") for name, p in self.columns.items())


def _final(run_dir: Path) -> dict[str, Any]:
    """What a run's final.json records, or {} when it has none readable."""
    import json

    try:
        final = json.loads((run_dir / "final.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return final if isinstance(final, dict) else {}


def _load_columns(final: dict[str, Any], warn: bool) -> ColumnsPredictor:
    """A several-target run: each column's predictor from `targets/<column>/run/`, or the constant it kept, as
    its `final` (final.json) records them."""
    columns: dict[str, Predictor | MediaPredictor | JointColumn | JointMediaColumn | float] = {}
    networks: dict[str, MediaPredictor] = {}
    for name, record in final["targets"].items():
        if record.get("kind") == "constant":
            columns[name] = float(record["value"])
        elif record.get("kind") == "joint" and record.get("network"):
            columns[name] = load_joint_network(record["model"], name, networks)
        elif record.get("kind") == "joint":
            columns[name] = load_joint_column(record["model"], name)
        else:
            column = load_predictor(record["run_dir"], warn=warn)
            assert isinstance(column, Predictor | MediaPredictor)  # a column's run has one target
            columns[name] = column
    long = LongSubmission.model_validate(final["submission"]) if final.get("submission") else None
    return ColumnsPredictor(columns, final.get("id_column"), long)


class Seq2SeqPredictor:
    """A seq2seq run's model (`kind: seq2seq`): the token and context tables and the shapes' fall-backs its best
    experiment learnt (`crew.tools.normalizer`), applied by the same function the experiment ran."""

    def __init__(self, manifest: dict[str, Any], model: dict[str, Any], task: dict[str, Any]) -> None:
        self.manifest = manifest
        self.model = model
        self.task = task

    @property
    def feature_names_in_(self) -> list[str]:
        return [c for c in (self.task["source"], self.task.get("group")) if c]

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        problems, notes = [], []
        if self.task["source"] not in frame.columns:
            problems.append(f"lacks column {self.task['source']!r}, the tokens to normalise")
        group = self.task.get("group")
        if "context" in self.model and group and group not in frame.columns:
            notes.append(f"no column {group!r}: the whole table is read as one sequence for the context")
        return problems, notes

    def version_notes(self) -> list[str]:
        saved, now = self.manifest.get("versions") or {}, _versions()
        return [f"saved with {name} {version}, read with {now.get(name, 'none')}" for name, version in saved.items()
                if name in ("pandas", "pyarrow") and now.get(name) != version]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's output text."""
        from crew.tools import normalizer

        rows = frame.reset_index(drop=True).copy()
        for column in self.feature_names_in_:
            if column in rows.columns:
                rows[column] = rows[column].fillna("").astype(str)
        return normalizer.predict(self.model, rows, self.task)[0].to_numpy()

    def submission(self, frame: pd.DataFrame, *, proba: bool = False) -> pd.DataFrame:
        """The rows' ids and outputs, in the task's submission format (`proba` does not apply to text)."""
        ids = _ids(frame, self.task.get("id_column"))
        return pd.DataFrame({ids.name: ids, self.task["target"]: self.predict(frame)})

    def describe(self) -> str:
        return (f"seq2seq: {', '.join(self.manifest.get('insights', []))} (experiment {self.manifest.get('experiment')}, "
                f"held-out accuracy {self.manifest.get('cv')})")


def save_seq2seq_predictor(folder: Path, model_dir: Path, *, experiment: str, insights: list[str],
                           cv: float | None) -> dict[str, Any]:
    """Copy a seq2seq experiment's saved mapping (`model/`) into `folder` with a manifest naming every file's
    SHA-256, as `save_predictor` does for a tabular run."""
    return _save_copied(folder, model_dir, kind="seq2seq", experiment=experiment, insights=insights, cv=cv)


def _save_copied(folder: Path, model_dir: Path, *, kind: str, experiment: str, insights: list[str],
                 cv: float | None) -> dict[str, Any]:
    """An experiment's own saved model folder, copied whole beside a manifest of every file's SHA-256."""
    import datetime
    import json
    import shutil

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    files = [{"file": p.name, "sha256": _sha256(p)} for p in sorted(staging.iterdir())]
    manifest = {"format": PREDICTOR_FORMAT, "kind": kind, "experiment": experiment, "insights": insights,
                "cv": cv, "files": files, "versions": _versions(),
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    (staging / "predictor.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return {"saved": True, "path": str(folder / "predictor.json"), "sha256": _sha256(folder / "predictor.json"),
            "bytes": sum(p.stat().st_size for p in folder.iterdir())}


def _check_files(folder: Path, manifest: dict[str, Any]) -> None:
    for record in manifest.get("files", []):
        file = folder / Path(record["file"]).name
        if not file.is_file() or _sha256(file) != record["sha256"]:
            raise ModelError(f"{file} does not match the SHA-256 its manifest records: changed or missing since "
                             "the run saved it; not loaded")


def _load_seq2seq(folder: Path, manifest: dict[str, Any]) -> Seq2SeqPredictor:
    from crew.tools import normalizer

    _check_files(folder, manifest)
    model, task = normalizer.load_model(str(folder))
    return Seq2SeqPredictor(manifest, model, task)


class MediaPredictor:
    """A media run's model: the network (or the boosted baseline) its best experiment trained (`crew.tools.vision`),
    applied to new files by the same decoding and prediction code. Paths in a table resolve against its folder
    (`read_rows` records it) or the one above, else the working folder."""

    def __init__(self, manifest: dict[str, Any], folder: Path) -> None:
        import json

        self.manifest = manifest
        self.folder = folder
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.config, self.task = saved["config"], saved["task"]
        self.saved = saved
        self._model: Any = None
        self._last: tuple[pd.DataFrame, np.ndarray] | None = None  # the rows predicted last, for a joint network's labels

    @property
    def feature_names_in_(self) -> list[str]:
        return [self.task["media"]]

    def _root(self, frame: pd.DataFrame) -> Path:
        """Where the paths resolve: the table's folder, or the folder above it when the files are there instead (a
        crew task keeps its tables in data/ beside its media folders); the working folder for a table in memory."""
        root = Path(frame.attrs.get("root") or Path.cwd())
        column = self.task["media"]
        first = str(frame[column].iloc[0]) if column in frame.columns and len(frame) else ""
        if first and not (root / first).exists() and (root.parent / first).exists():
            return root.parent
        return root

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        """The media column is there and every file it names decodes (the first few that do not are named)."""
        column = self.task["media"]
        if column not in frame.columns:
            return [f"lacks column {column!r}, the {self.task['kind']} files to predict"], []
        lacking = [c for c in (self.saved.get("metadata") or {}) if c not in frame.columns]
        if lacking and self.config["model"] == "boosted":
            return [f"lacks the column(s) {lacking} the model was trained on beside the files"], []
        failed, shown = media_problems(self._root(frame), frame[column].astype(str).tolist(), self.task["kind"])
        if failed:
            return [f"{failed} of {len(frame)} {self.task['kind']} files cannot be read: {', '.join(shown)}"], []
        return [], []

    def version_notes(self) -> list[str]:
        saved, now = self.manifest.get("versions") or {}, _versions()
        return [f"saved with {name} {version}, read with {now.get(name, 'none')}" for name, version in saved.items()
                if name in ("torch", "lightgbm", "numpy") and now.get(name) != version]

    def _arrays(self, frame: pd.DataFrame) -> np.ndarray:
        import os

        from crew.tools import vision

        root, size = self._root(frame), int(self.config["image_size"])
        return vision.decode_all(str(root), frame[self.task["media"]].astype(str).tolist(), size, self.task["kind"],
                                 len(os.sched_getaffinity(0)))

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities in `task["classes"]` order, each label's probability (a joint network of several
        labels, `task["targets"]` order), or values."""
        from crew.tools import vision

        arrays = self._arrays(frame)
        if self.config["model"] == "boosted":
            import lightgbm as lgb

            booster = self._model or lgb.Booster(model_file=str(self.folder / "boosted.txt"))
            self._model = booster
            meta = self.saved.get("metadata") or {}
            missing = [c for c in meta if c not in frame.columns]
            if missing:
                raise ModelError(f"the rows lack the column(s) {missing} the model was trained on beside the files")
            features = np.hstack([vision.summary_features(arrays), vision.metadata_matrix(frame, meta)])
            raw = np.asarray(booster.predict(features))
            if self.task["target_type"] == "regression":
                return raw
            return vision.class_probabilities(raw if raw.ndim == 2 else np.column_stack([1 - raw, raw]),
                                              self.saved["fitted_classes"], len(self.task["classes"]))
        import torch

        if self._model is None:
            net = vision.build_network({**self.config, "weights": None}, int(self.saved["in_channels"]),
                                       vision.outputs_of(self.task))
            net.load_state_dict(torch.load(self.folder / "weights.pt", map_location="cpu", weights_only=True))
            self._model = net
        raw = vision.predict(self._model, arrays, self.saved["mean"], self.saved["std"], torch.device("cpu"), False,
                             bool(self.config.get("tta")), 64, task=self.task)
        if self.task["target_type"] == "regression":
            raw = raw * float(self.saved["scale"]) + float(self.saved["centre"])
        return raw

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Labels (or values), as the submission holds them."""
        raw = self.predict_raw(frame)
        if self.task["target_type"] == "regression":
            return raw
        return np.asarray(self.task["classes"], dtype=object)[raw.argmax(axis=1)]

    def submission(self, frame: pd.DataFrame, *, proba: bool = False) -> pd.DataFrame:
        """The rows' ids and predictions in the task's submission format (`proba`: one column per class)."""
        ids = _ids(frame, self.task.get("id_column"))
        raw = self.predict_raw(frame)
        if proba and self.task["target_type"] != "regression":
            return pd.concat([ids.to_frame(), pd.DataFrame(raw, columns=self.task["classes"])], axis=1)
        return script.submission_frame(ids, raw, task=self.task)

    def describe(self) -> str:
        return (f"media: {self.config['model']} at {self.config['image_size']}px (experiment "
                f"{self.manifest.get('experiment')}, held-out {self.task['metric']} {self.manifest.get('cv')})")


class DenoisePredictor(MediaPredictor):
    """An image-to-image run's model (`crew.tools.denoise`): the per-pixel booster or the convolutional denoiser
    its best experiment trained; `predict` gives each row's clean page, `submission` a row per pixel."""

    def check(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        column = self.task["media"]
        if column not in frame.columns:
            return [f"lacks column {column!r}, the images to clean"], []
        failed, shown = media_problems(self._root(frame), frame[column].astype(str).tolist(), "image")
        if failed:
            return [f"{failed} of {len(frame)} image files cannot be read: {', '.join(shown)}"], []
        return [], []

    def predict(self, frame: pd.DataFrame) -> list[np.ndarray]:  # type: ignore[override]
        """Each row's page, cleaned: grey levels in [0, 1] at the input's own size."""
        from crew.tools import denoise

        root = self._root(frame)
        pages = [denoise.grey(str(root), p) for p in frame[self.task["media"]].astype(str)]
        if self.config["model"] == "boosted":
            import lightgbm as lgb

            self._model = self._model or lgb.Booster(model_file=str(self.folder / "boosted.txt"))
            return [denoise.predict_boosted(self._model, page, int(self.config["radius"])) for page in pages]
        import torch

        if self._model is None:
            net = denoise.build_denoiser(int(self.config["width"]), tuple(self.saved["dilations"]))
            net.load_state_dict(torch.load(self.folder / "weights.pt", map_location="cpu", weights_only=True))
            self._model = net
        return [denoise.predict_denoiser(self._model, page, torch.device("cpu")) for page in pages]

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Every row's cleaned pixels, one after another (pages differ in size)."""
        return np.concatenate([page.ravel() for page in self.predict(frame)])

    def submission(self, frame: pd.DataFrame, *, proba: bool = False) -> pd.DataFrame:
        """A row per pixel, keyed as the task's submission is (`proba` does not apply)."""
        from crew.tools import denoise

        return denoise.pixel_frame(_ids(frame, self.task.get("id_column")), self.predict(frame),
                                   task=self.task).to_pandas()

    def describe(self) -> str:
        return (f"denoise: {self.config['model']} (experiment {self.manifest.get('experiment')}, held-out "
                f"{self.task['metric']} {self.manifest.get('cv')} per pixel)")


def save_media_predictor(folder: Path, model_dir: Path, *, experiment: str, insights: list[str],
                         cv: float | None) -> dict[str, Any]:
    """Copy a media experiment's saved model (`model/`: config.json and weights.pt or boosted.txt) into `folder`
    with a manifest naming every file's SHA-256 (kind `denoise` for an image-to-image one)."""
    import json

    saved = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    kind = "denoise" if "format" in saved.get("task", {}) else "media"
    return _save_copied(folder, model_dir, kind=kind, experiment=experiment, insights=insights, cv=cv)


def load_predictor(path: str | Path, *,
                   warn: bool = True) -> Predictor | ColumnsPredictor | Seq2SeqPredictor | MediaPredictor:
    """A run's predictor from its run folder (or its `predictor/` folder): every file checked against the
    manifest's SHA-256 and loaded with `TRUSTED` types only. `warn`: a UserWarning for each library whose version
    differs from the one that saved it (`Predictor.version_notes`), as scikit-learn warns on unpickling. A run of
    several targets gives a `ColumnsPredictor` of its columns' predictors."""
    import json
    import warnings

    sio = script.load_skops()

    path = Path(path)
    final = _final(path)
    if final.get("kind") == "columns":  # several targets, also when every column kept the joint baseline (no
        return _load_columns(final, warn)  # targets/ folder then)
    folder = path / "predictor" if (path / "predictor" / "predictor.json").is_file() else path
    manifest_path = folder / "predictor.json"
    if not manifest_path.is_file():
        raise ModelError(f"{path} holds no predictor (predictor/predictor.json): the run saved no final model")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{manifest_path} is not readable JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PREDICTOR_FORMAT:
        raise ModelError(f"{manifest_path} is not a crew predictor of format {PREDICTOR_FORMAT}")
    if manifest.get("kind") == "seq2seq":
        return _load_seq2seq(folder, manifest)
    if manifest.get("kind") in ("media", "denoise"):
        _check_files(folder, manifest)
        return (DenoisePredictor if manifest["kind"] == "denoise" else MediaPredictor)(manifest, folder)
    files = [*manifest.get("members", []), *([manifest["stack"]] if manifest.get("stack") else [])]
    for record in files:
        file = folder / Path(record["file"]).name
        if not file.is_file() or _sha256(file) != record["sha256"]:
            raise ModelError(f"{file} does not match the SHA-256 its manifest records: changed or missing since "
                             "the run saved it; not loaded")
    members = {m["name"]: load_experiment_model(folder / Path(m["file"]).name) for m in manifest["members"]}
    stacker = None
    if manifest.get("stack"):
        blob = (folder / Path(manifest["stack"]["file"]).name).read_bytes()
        if sio.get_untrusted_types(data=blob):
            raise ModelError(f"{folder / 'stack.skops'} holds types crew does not trust; not loaded")
        stacker = sio.loads(blob)
    predictor = Predictor(manifest, members, stacker, folder)
    if warn:
        for note in predictor.version_notes():
            warnings.warn(f"{folder}: {note}", UserWarning, stacklevel=2)
    return predictor


def read_rows(path: str | Path) -> pd.DataFrame:
    """A table of rows to predict, read as the experiments read the task's files (pandas; csv or parquet), with
    every failure a one-line ModelError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} does not exist")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ModelError(f"{path.name} is neither csv nor parquet; convert it to one of them")
    try:
        frame = script.read(str(path)) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many types; each means "cannot parse"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path.name} could not be read ({reason[:160]})") from exc
    if frame.empty:
        raise ModelError(f"{path.name} has no rows to predict")
    frame.attrs["root"] = str(path.parent)  # where a media column's relative paths resolve
    return frame
