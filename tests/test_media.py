"""Images and sounds: the task format's media columns, the experiment script, the critic's pricing of networks,
GPU slots, the shared array store, local pretrained weights (never downloaded), and whole solves."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile
from PIL import Image

from crew import Blackboard, Budget, Experiment, Task, TaskError, grade
from crew.roles.critic import Critic
from crew.sandbox import GPUDevice, GPUSlots, SimulatedGPUs
from crew.tools import vision
from crew.tools.cost import CostModel, deep_units, read_media_workload
from crew.tools.media import media_store_cached, share_store, store_name
from crew.tools.predictor import MediaPredictor, load_predictor, read_rows
from crew.workflows import media
from crew.workflows.media import local_weights, script_for, see

from .conftest import REPO

_spec = importlib.util.spec_from_file_location("bench_shape_task", REPO / "bench" / "shape_task.py")
shape_task = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shape_task)

GiB = 1024**3


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated shape task: 90 train and 30 test images of 32 x 32."""
    return shape_task.write(tmp_path_factory.mktemp("shapes"), train=90, test=30, size=32)


def _image_task(tmp_path: Path, cells: list[str], *, kind: str = "image") -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "ok.png")
    pl.DataFrame({"id": [1, 2], "file": ["images/ok.png"] * 2, "y": [0, 1]}).write_csv(tmp_path / "train.csv")
    pl.DataFrame({"id": list(range(3, 3 + len(cells))), "file": cells}).write_csv(tmp_path / "test.csv")
    (tmp_path / "task.yaml").write_text("name: m\ndata: {train: train.csv, test: test.csv}\ntarget: y\n"
                                        f"id_column: id\nmetric: accuracy\nmedia: {{file: {kind}}}\n")
    return tmp_path / "task.yaml"


# -- the task format ---------------------------------------------------------------------------


def test_media_files_that_are_missing_or_do_not_decode_are_named(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 20)
    path = _image_task(tmp_path, ["images/ok.png", "images/torn.png", "images/gone.png", "../outside.png",
                                  "grading/answers.png", "flat.png"])
    with pytest.raises(TaskError) as err:
        Task.load(path)
    message = str(err.value)
    assert "media.file" in message and "5 of 6 image files cannot be read" in message
    assert "torn.png' (does not decode as image" in message and "gone.png' (missing)" in message
    assert "outside the task folder" in message


def test_media_task_validates_and_exposes_its_folders_only(shapes: Path) -> None:
    task = Task.load(shapes)
    assert task.media == {"image": "image"}
    assert task.data_files == ["train.csv", "test.csv", "images"]  # grading/ is not among them
    assert "image files in images" in str(task.summary()["media"])


def test_crew_validate_refuses_a_broken_media_file_in_one_line(tmp_path: Path) -> None:
    path = _image_task(tmp_path, ["images/none.png"])
    proc = subprocess.run([sys.executable, "-m", "crew", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "test.csv: media.file" in lines[0] and "none.png' (missing)" in lines[0]


def test_audio_files_are_decoded_to_check_them(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    rate = 8000
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    soundfile.write(tmp_path / "images" / "tone.wav", tone, rate)
    (tmp_path / "images" / "empty.wav").write_bytes(b"RIFF")
    path = _image_task(tmp_path, ["images/tone.wav", "images/empty.wav"], kind="audio")
    with pytest.raises(TaskError, match=r"1 of 2 audio files cannot be read: 'images/empty.wav'"):
        Task.load(path)


def test_media_belongs_to_tabular_tasks(tmp_path: Path) -> None:
    path = _image_task(tmp_path, ["images/ok.png"])
    path.write_text(path.read_text() + "kind: seq2seq\nsource: file\n")
    with pytest.raises(TaskError, match="media: is only used by kind: tabular"):
        Task.load(path)


# -- the experiment script's parts -------------------------------------------------------------


def test_decoding_resizes_images_and_turns_sound_into_a_spectrogram(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 60), 200, np.uint8), mode="L").save(tmp_path / "grey.png")
    image = vision.decode(str(tmp_path / "grey.png"), 32, "image")
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and int(image[0, 0, 0]) == 200
    rate = 16000
    t = np.arange(rate) / rate
    chirp = np.sin(2 * np.pi * (200 + 3000 * t) * t).astype(np.float32)
    soundfile.write(tmp_path / "chirp.wav", chirp, rate)
    spec = vision.decode(str(tmp_path / "chirp.wav"), 48, "audio")
    assert spec.shape == (48, 48, 1) and spec.dtype == np.uint8
    loudest = spec[:, :, 0].argmax(axis=0)  # row of the loudest band per frame: rows run high to low pitch
    assert loudest[5] > loudest[-5], "a rising chirp moves up the spectrogram"


def test_resnet_has_torchvision_parameter_names() -> None:
    names = set(vision.resnet("resnet18", 3, 10).state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.bias", "fc.weight"} <= names


# -- the critic --------------------------------------------------------------------------------


def test_critic_prices_epochs_and_cuts_them_to_fit(shapes: Path) -> None:
    task = Task.load(shapes)
    code = script_for(task, {"model": "cnn", "epochs": 40, "image_size": 64})
    work = read_media_workload(code, rows=2_000, test_rows=500, threads=2)
    assert (work.deep, work.epochs, work.image_size) == ("cnn", 40, 64)
    small = CostModel().estimate(work.model_copy(update={"epochs": 4}))
    large = CostModel().estimate(work)
    assert large.seconds > 5 * small.seconds and "40 epochs" in large.basis
    proposal = {"id": "x", "code": code, "insights": ["cnn"], "threads": 2}
    state = {"task": str(shapes), "proposal": proposal,
             "remaining": {"wall_time": 60.0, "experiment_time": 60.0, "memory": 4 * GiB, "gpus": 0}}
    critic = Critic()
    context = critic.context(state)
    verdict = critic.expert(context)
    # the tiny task's 40 epochs fit; priced on 2,500 files they would not, and the epochs are what gives way
    assert verdict.verdict == "approve"
    context["estimate"] = CostModel().estimate(work)
    verdict = critic.expert(context)
    assert verdict.verdict == "approve_variant" and set(verdict.changes) <= {"epochs", "image_size"}
    assert "epochs" in verdict.changes and verdict.changes["epochs"] < 40


def test_measured_epochs_calibrate_the_next_estimate(shapes: Path) -> None:
    task = Task.load(shapes)
    code = script_for(task, {"model": "cnn", "epochs": 10, "image_size": 64})

    done = Experiment(status="done", spec={"batch": 64}, metrics={"model": "cnn", "device": "cpu", "epoch_seconds": 8.0,
                                                                   "rows_fit": 1600, "image_size": 64})
    units = deep_units([done])
    assert units["cnn@cpu"]["image_seconds"] == pytest.approx(0.005)
    work = read_media_workload(code, rows=2000, test_rows=500, units=units)
    estimate = CostModel().estimate(work)
    assert "calibrated by the epochs" in estimate.basis
    assert 10 * 8.0 < estimate.seconds < 10 * 8.0 * 1.2  # ten epochs of 1600 rows at 5 ms, and the predictions


def test_a_network_on_a_gpu_declares_its_gpu_memory(shapes: Path) -> None:
    code = script_for(Task.load(shapes), {"model": "resnet18", "epochs": 5, "image_size": 128, "batch": 64})
    on_gpu = CostModel().estimate(read_media_workload(code, rows=10_000, device="cuda"))
    on_cpu = CostModel().estimate(read_media_workload(code, rows=10_000, device="cpu"))
    assert on_cpu.gpu_memory == 0 and on_gpu.gpu_memory > 16 * 11e6
    assert on_gpu.seconds < on_cpu.seconds


# -- local pretrained weights: found in torchvision's cache, never downloaded --------------------


def test_local_torchvision_weights_are_found_and_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet34-b627a593.pth").write_bytes(b"not a checkpoint")
    assert local_weights() is None
    net = vision.resnet("resnet18", 3, 1000)
    with torch.no_grad():
        net.fc.bias.fill_(0.125)  # a mark the loaded network must carry
    torch.save(net.state_dict(), checkpoints / "resnet18-f37072fd.pth")
    found = local_weights()
    assert found == checkpoints / "resnet18-f37072fd.pth"
    loaded = vision.build_network({"model": "resnet18"}, 3, 1000, weights=str(found))
    assert torch.equal(loaded.layer1[0].conv1.weight, net.layer1[0].conv1.weight)


def test_without_weights_nothing_is_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert local_weights() is None


# -- whole runs ---------------------------------------------------------------------------------


class _Recorder:
    """An executor that records each launch's GPUs, then runs it in the real local sandbox."""

    def __init__(self, root: Path) -> None:
        from crew.sandbox import LocalExecutor

        self.inner = LocalExecutor(root=root)
        self.gpus: dict[str, list[int]] = {}

    def run(self, launch):
        self.gpus[launch.id] = list(launch.gpus)
        return self.inner.run(launch)


@pytest.mark.e2e
def test_a_shape_task_is_solved_on_a_gpu_slot_and_its_predictor_reproduces_it(
        shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated NVML: networks get GPU 0 with their declared memory (here CUDA is absent, so they train on the
    CPU), the boosted baseline gets none; the array store and the trained network are checked and shared; the kept
    model predicts the submission again, and new files that do not decode are refused."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))  # no pretrained rung: boosted, cnn, tta
    task = Task.load(shapes)
    run = tmp_path / "run"
    run.mkdir()
    board = Blackboard(run / "blackboard.sqlite")
    recorder = _Recorder(run / "experiments")
    slots = GPUSlots(nvml=SimulatedGPUs([GPUDevice(index=0, total_memory=80 * GiB, free_memory=80 * GiB)]))
    final = see(task, run, board=board, budget=Budget(wall_time=120, experiment_time=90, memory=4 * GiB),
                executor=recorder, gpu_slots=slots)
    experiments = {e.insights[0]: e for e in board.experiments()}
    assert experiments["boosted"].status == "done" and recorder.gpus[experiments["boosted"].id] == []
    cnn = experiments["cnn"]
    assert cnn.status == "done", cnn.error
    assert recorder.gpus[cnn.id] == [0] and cnn.estimate["gpu_memory"] > 0 and "on cuda" in cnn.estimate["basis"]
    assert slots.available() == {0: 80 * GiB}  # the slot was given back
    assert cnn.metrics["device"] == "cpu" and len(cnn.metrics["epochs"]) >= 1
    assert all(e["seconds"] > 0 for e in cnn.metrics["epochs"])
    assert media_store_cached(task, 32, run / "stage_cache")  # the boosted baseline's 32 px store, checked
    assert cnn.metrics["timings"]["store"] == "hit"
    tta = experiments["tta"]  # the cnn as trained, shared by crew, predicting with flips: no epoch of its own
    assert tta.status == "done" and tta.spec["init"] == f"models/{cnn.id}" and tta.metrics["epochs_run"] == 0
    assert tta.wall_time < cnn.wall_time
    answers = shapes.parent / "grading" / "answers.csv"
    graded = grade(task, run / "submission.csv", answers)
    assert graded.valid_submission and graded.score is not None
    best = board.experiment(final["experiment"])
    predictor = load_predictor(run)
    assert isinstance(predictor, MediaPredictor)
    rows = read_rows(shapes.parent / "test.csv")
    again = predictor.submission(rows)
    submitted = pl.read_csv(run / "submission.csv").to_pandas()
    assert (again["shape"].to_numpy() == submitted["shape"].to_numpy()).mean() >= 0.95, best.insights
    (shapes.parent / "images" / "broken.png").write_bytes(b"nope")
    bad = rows.head(2).copy()
    bad.loc[0, "image"] = "images/broken.png"
    problems, _ = predictor.check(bad)
    assert problems and "images/broken.png" in problems[0]


@pytest.mark.e2e
def test_no_gpu_room_means_the_cpu_and_a_note(shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    monkeypatch.setattr(media, "LADDER", media.LADDER[1:2])
    run = tmp_path / "run"
    run.mkdir()
    board = Blackboard(run / "blackboard.sqlite")
    recorder = _Recorder(run / "experiments")
    slots = GPUSlots(nvml=SimulatedGPUs([GPUDevice(index=0, total_memory=GiB, free_memory=100 * 1024**2)]))
    see(Task.load(shapes), run, board=board, budget=Budget(wall_time=60, experiment_time=50, memory=4 * GiB),
        executor=recorder, gpu_slots=slots)
    (exp,) = board.experiments()
    assert recorder.gpus[exp.id] == [] and exp.status == "done"
    assert any("runs on the CPU" in m.content for m in board.messages())


@pytest.mark.e2e
def test_pretrained_weights_in_the_cache_are_fine_tuned(shapes: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(vision.resnet("resnet18", 3, 1000).state_dict(), checkpoints / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(media, "LADDER", (("pretrained", {**dict(media.LADDER[2][1]), "epochs": 1}),))
    run = tmp_path / "run"
    run.mkdir()
    board = Blackboard(run / "blackboard.sqlite")
    see(Task.load(shapes), run, board=board, budget=Budget(wall_time=90, experiment_time=80, memory=4 * GiB),
        gpu_slots=GPUSlots(nvml=SimulatedGPUs([])))
    (exp,) = board.experiments()
    assert exp.status == "done", exp.error
    assert exp.metrics["pretrained"] == "weights/resnet18-f37072fd.pth"
    assert (run / "stage_cache" / "weights" / "resnet18-f37072fd.pth").is_file()


@pytest.mark.e2e
def test_crew_solve_on_a_media_task_then_crew_predict(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env_home = {"TORCH_HOME": str(tmp_path / "none")}
    import os

    proc = subprocess.run([sys.executable, "-m", "crew", "solve", str(shapes), "--budget", "45s", "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, **env_home}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    final = json.loads((out / "final.json").read_text())
    assert final["kind"] == "media"
    task = Task.load(shapes)
    assert grade(task, out / "submission.csv", shapes.parent / "grading" / "answers.csv").valid_submission
    proc = subprocess.run([sys.executable, "-m", "crew", "predict", str(out), str(shapes.parent / "test.csv"),
                           "--out", str(tmp_path / "p.csv")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pl.read_csv(tmp_path / "p.csv").height == 30


def test_a_store_that_does_not_decode_to_the_same_arrays_is_not_shared(shapes: Path, tmp_path: Path) -> None:
    task = Task.load(shapes)
    name = store_name(task, 32)
    workdir = tmp_path / "exp"
    (workdir / "store").mkdir(parents=True)
    rows = task.shapes["train"][0] + task.shapes["test"][0]
    np.save(workdir / "store" / name, np.zeros((rows, 32, 32, 3), np.uint8))  # a poisoned store
    shared = tmp_path / "shared"
    shared.mkdir()
    assert share_store(task, workdir, 32, shared) is None and not media_store_cached(task, 32, shared)
    paths = pl.concat([pl.read_csv(shapes.parent / "train.csv")["image"], pl.read_csv(shapes.parent / "test.csv")["image"]])
    honest = np.stack([vision.decode(str(shapes.parent / p), 32, "image") for p in paths])
    np.save(workdir / "store" / name, honest)
    assert share_store(task, workdir, 32, shared) == name and media_store_cached(task, 32, shared)


def test_the_critic_fits_a_network_to_its_gpu_slot_or_rejects_it(shapes: Path) -> None:
    code = script_for(Task.load(shapes), {"model": "resnet18", "epochs": 5, "image_size": 96, "batch": 64})
    critic = Critic()

    def verdict(gpu_memory: int):
        state = {"task": str(shapes), "proposal": {"id": "x", "code": code, "insights": ["pretrained"], "gpus": 1},
                 "remaining": {"wall_time": 600.0, "experiment_time": 600.0, "memory": 4 * GiB, "gpus": 1,
                               "gpu_memory": gpu_memory}}
        context = critic.context(state)
        return context["estimate"], critic.expert(context)

    estimate, roomy = verdict(80 * GiB)
    assert roomy.verdict == "approve" and "on cuda" in estimate.basis
    _, tight = verdict(estimate.gpu_memory - 64 * 1024**2)  # a smaller batch holds fewer activations
    assert tight.verdict == "approve_variant" and tight.changes.get("batch", 64) < 64
    _, hopeless = verdict(256 * 1024**2)  # not even the CUDA context fits
    assert hopeless.verdict == "reject" and "GPU memory" in hopeless.reason


@pytest.mark.e2e
def test_a_killed_media_run_resumes_where_it_stopped(shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What finished stays finished; the experiment a kill left running is marked interrupted and runs again."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    run = tmp_path / "run"
    run.mkdir()
    board = Blackboard(run / "blackboard.sqlite")
    task = Task.load(shapes)
    slots = GPUSlots(nvml=SimulatedGPUs([]))
    ladder = media.LADDER
    monkeypatch.setattr(media, "LADDER", ladder[:1])
    see(task, run, board=board, budget=Budget(wall_time=60, experiment_time=50, memory=4 * GiB), gpu_slots=slots)
    (boosted,) = board.experiments()
    killed = board.add_experiment(Experiment(insights=["cnn"], stage="model", status="running",
                                             code=script_for(task, {"model": "cnn", "epochs": 1})))
    monkeypatch.setattr(media, "LADDER", ladder[:2])
    final = see(task, run, board=board, budget=Budget(wall_time=60, experiment_time=50, memory=4 * GiB),
                gpu_slots=slots)
    by_id = {e.id: e for e in board.experiments()}
    assert by_id[boosted.id].status == "done" and by_id[killed.id].error.startswith("interrupted")
    reruns = [e for e in by_id.values() if e.insights == ["cnn"] and e.id != killed.id]
    assert len(reruns) == 1 and reruns[0].status == "done", [(e.insights, e.status, e.error) for e in by_id.values()]
    assert len([e for e in by_id.values() if e.insights == ["boosted"]]) == 1
    assert final["kind"] == "media" and (run / "submission.csv").is_file()


@pytest.mark.parametrize("shape", [(300, 24, 20, 3), (130, 48, 32, 1)])
def test_summary_features_in_chunks_are_the_features_of_the_whole_store(shape: tuple[int, ...]) -> None:
    """The boosted rung's features are computed a chunk of files at a time (a small float copy beside a store of
    any size); the chunks change nothing."""
    from crew.tools import vision

    store = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    whole = vision.summary_features(store, chunk=len(store))
    assert np.allclose(vision.summary_features(store, chunk=64), whole, atol=1e-6)
    assert whole.shape == (shape[0], 43 if shape[3] == 3 else 57) and np.isfinite(whole).all()


@pytest.fixture(scope="module")
def labels(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shape task as several labels (as plant-pathology's are): a 0/1 column per shape, mean column-wise AUC."""
    import shutil

    root = tmp_path_factory.mktemp("labels")
    shutil.copytree(shapes.parent / "images", root / "images")
    train = pl.read_csv(shapes.parent / "train.csv")
    train.with_columns(*(pl.col("shape").eq(s).cast(pl.Int64).alias(s) for s in shape_task.SHAPES)).drop(
        "shape").write_csv(root / "train.csv")
    shutil.copyfile(shapes.parent / "test.csv", root / "test.csv")
    (root / "grading").mkdir()
    pl.read_csv(shapes.parent / "grading" / "answers.csv").with_columns(
        *(pl.col("shape").eq(s).cast(pl.Int64).alias(s) for s in shape_task.SHAPES)).drop("shape").write_csv(
        root / "grading" / "answers.csv")
    (root / "task.yaml").write_text("name: labels\ndata: {train: train.csv, test: test.csv}\n"
                                    f"target: [{', '.join(shape_task.SHAPES)}]\nid_column: id\n"
                                    "metric: roc_auc_columns\nmedia: {image: image}\n", encoding="utf-8")
    return root / "task.yaml"


@pytest.mark.e2e
def test_several_labels_train_one_joint_network_whose_files_every_column_reuses(
        labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task of several labels per image: one network with a sigmoid per label first (every column a real model
    early), its array store checked and handed to every column's run (none decodes again), and a column keeps
    the joint network unless its own run scores better held out; the joint network loads and predicts again."""
    from crew.tools.predictor import ColumnsPredictor, JointMediaColumn, load_joint_network
    from crew.workflows.solve import solve

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    run = tmp_path / "run"
    summary = solve(labels, out=run, wall_time=75)
    joint = json.loads((run / "joint.json").read_text())
    assert joint["ok"] and joint["network"], joint
    metrics = json.loads((Path(joint["folder"]) / "metrics.json").read_text())
    assert metrics["model"] == "cnn" and metrics["epochs_run"] >= 1 and metrics["timings"]["store"] == "decoded"
    assert set(joint["per_column"]) == set(shape_task.SHAPES)
    assert all(0.0 <= v <= 1.0 for v in joint["per_column"].values())
    experiments = [e for c in shape_task.SHAPES
                   for e in Blackboard(run / "targets" / c / "run" / "blackboard.sqlite").experiments(status="done")]
    assert experiments and all(e.metrics["timings"]["store"] == "hit" for e in experiments)  # decoded once, by the joint
    finals = summary["final"]["targets"]
    for column, record in finals.items():
        if record["kind"] != "joint":  # its own run beat the joint network held out
            assert record["cv"] > joint["per_column"][column]
    network = load_joint_network(joint["model"], "square")
    rows = read_rows(labels.parent / "test.csv")
    predicted = pl.read_csv(Path(joint["folder"]) / "predictions.csv")
    assert np.allclose(network.predict(rows), predicted["square"].to_numpy(), atol=1e-4)
    predictor = load_predictor(run)
    assert isinstance(predictor, ColumnsPredictor)
    submitted = pl.read_csv(run / "submission.csv")
    again = predictor.submission(rows)
    for column, model in predictor.columns.items():
        if isinstance(model, JointMediaColumn):
            assert np.allclose(again[column].to_numpy(), submitted[column].to_numpy(), atol=1e-4)
    graded = grade(Task.load(labels), run / "submission.csv", labels.parent / "grading" / "answers.csv")
    assert graded.valid_submission and graded.score is not None and graded.score > 0.5
