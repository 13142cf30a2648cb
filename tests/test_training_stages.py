"""The training-stage runner on synthetic features: outputs, resume, MLflow run and logged model."""

import dataclasses
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.datasets.clips import ClipDataset, collate_clips
from pipeline.datasets.split import split_corpus
from pipeline.errors import PipelineError
from pipeline.features import save_features
from pipeline.models.alignment import AlignmentModel
from pipeline.models.persistence import load_model, save_model
from pipeline.models.synthesis import SynthesisModel
from pipeline.training.alignment_task import AlignmentTask
from pipeline.training.run import TrainingJob, TrainingOutputs, run_training
from pipeline.training.synthesis_task import SynthesisTask
from tests._params import MEL, PARAMS

FRAME_RATE = MEL.sample_rate / MEL.hop_length
FRAMES = dict(clip_frames=MEL.clip_frames, hop_length=MEL.hop_length)
OPTIMIZER = replace(PARAMS.train_synthesis.optimizer, lr=1.0, warmup=5)

SMALL = dict(d_model=32, attention_dim=16, ffn_dim=32, dropout=0.0)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """Six recordings of a repeating two-performer melody with a matching fake mel."""
    root = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    rows = []
    for r in range(6):
        n, frames = 60, 700
        onset = np.arange(n) * 11 + r
        pitch = 60 + (np.arange(n) * 7) % 12
        mel = np.full((80, frames), -8.0, np.float32)
        for on, p in zip(onset, pitch):
            mel[p - 40, on : on + 10] = 0.0
        mel += rng.normal(0, 0.1, mel.shape).astype(np.float32)
        data = {
            "pitch": pitch.astype(np.int16),
            "velocity": np.full(n, 80, np.int16),
            "score_onset": (np.arange(n) * 12).astype(np.int32),
            "score_duration": np.full(n, 12, np.int32),
            "onset_frame": onset.astype(np.int32),
            "offset_frame": (onset + 10).astype(np.int32),
            "performer_id": np.int16(r % 2),
        }
        save_features(root / f"rec{r}.npz", mel, data)
        rows.append(
            {
                "id": f"rec{r}",
                "piece": f"p{r // 2}",
                "performer": f"perf{r % 2}",
                "performer_id": r % 2,
                "frames": frames,
                "notes": n,
                "polyphonic": False,
                "tempo_qpm": 120.0,
            }
        )
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


def test_split_clips_come_only_from_their_part(features):
    index = pd.read_csv(features / "index.csv", dtype={"id": str})
    split = split_corpus(index, replace(PARAMS.split, test_share=0.34, validation_share=0.0, seed=0))
    assert split.test and not set(split.train) & set(split.test)
    test_clips = ClipDataset(features, split.test, **FRAMES)
    assert {ref.recording for ref in test_clips.refs} == set(split.test)


def test_clip_batches_have_masks_and_clip_relative_frames(features):
    ds = ClipDataset(features, ["rec0"], **FRAMES)
    assert [r.frames for r in ds.refs] == [312, 312, 76]
    batch = collate_clips([ds[0], ds[2]])
    assert batch["mel"].shape == (2, 80, 312) and batch["frame_mask"][1].sum() == 76
    assert batch["note_mask"][1].sum() < batch["note_mask"][0].sum()
    on, off, mask = batch["onset_frame"], batch["offset_frame"], batch["note_mask"]
    assert (on[mask] >= 0).all() and (off[mask] <= 312).all() and (off > on).all()
    starting = ClipDataset(features, ["rec0"], notes="starting", **FRAMES)[1]
    assert starting["target_onset"][0] == 0 and (starting["target_onset"] >= 0).all()


def run_stage(tmp_path, monkeypatch, features, name, task, model, steps, data_id="", learning_rate=1.0, init_from=None):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    notes = "starting" if name == "alignment" else "sounding"
    train = ClipDataset(features, ["rec0", "rec1", "rec2", "rec3"], notes=notes, **FRAMES)
    val = ClipDataset(features, ["rec4", "rec5"], notes=notes, **FRAMES)
    config = replace(
        PARAMS.train_synthesis.train,
        max_steps=steps,
        batch_size=4,
        validate_every=steps,
        checkpoint_every=steps,
        log_every=1,
    )
    logged = {"learning_rate": learning_rate, "train": dataclasses.asdict(config)}  # as the stages log asdict(config)
    return run_training(
        TrainingJob(
            name=name,
            task=task,
            model=model,
            train_set=train,
            val_set=val,
            collate=collate_clips,
            config=config,
            settings=logged,
            mel=MEL,
            outputs=TrainingOutputs(
                model_dir=tmp_path / "models" / name,
                metrics=tmp_path / "metrics" / f"train_{name}.json",
                loss_csv=tmp_path / "plots" / f"train_{name}_loss.csv",
                loss_png=tmp_path / "plots" / f"train_{name}_loss.png",
            ),
            root=tmp_path,
            data_id=data_id,
            init_from=init_from,
        )
    )


def run_synthesis(tmp_path, monkeypatch, features, steps: int, **options) -> SynthesisModel:
    """A small synthesis model trained by :func:`run_stage` to ``steps``."""
    model = SynthesisModel(n_performers=2, encoder_layers=1, decoder_layers=1, **SMALL)
    run_stage(
        tmp_path, monkeypatch, features, "synthesis", SynthesisTask(model, OPTIMIZER, MEL), model, steps, **options
    )
    return model


def test_a_fresh_run_can_start_from_another_stages_model(tmp_path, monkeypatch, features):
    """Fine-tuning: ``init_from`` seeds a fresh run's weights from a model file; a changed seed starts afresh."""
    from pipeline.training.run import seed_state

    torch.manual_seed(0)
    pretrained = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, layers=1, **SMALL)
    torch.nn.init.normal_(pretrained.head.weight, std=0.5)  # weights no fresh model starts from
    save_model(tmp_path / "pretrained.pt", pretrained)
    torch.manual_seed(1)
    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, layers=1, **SMALL)
    before = model.head.weight.detach().clone()
    run_stage(
        tmp_path,
        monkeypatch,
        features,
        "alignment",
        AlignmentTask(model, OPTIMIZER),
        model,
        1,
        init_from=tmp_path / "pretrained.pt",
    )
    tuned = load_model(tmp_path / "models/alignment/model.pt", AlignmentModel).head.weight
    seed = pretrained.head.weight.detach()
    assert (tuned - seed).abs().max() < 0.1 < (tuned - before).abs().max()  # one small step from the seed
    other = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, layers=2, **SMALL)
    with pytest.raises(PipelineError, match="do not fit this AlignmentModel"):
        seed_state(other, tmp_path / "pretrained.pt")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(PipelineError, match=r"missing\.pt: checkpoint not found"):  # before any output is written
        run_stage(
            fresh,
            monkeypatch,
            features,
            "alignment",
            AlignmentTask(other, OPTIMIZER),
            other,
            1,
            init_from=fresh / "missing.pt",
        )
    assert not (fresh / "models").exists()


@pytest.mark.slow
def test_alignment_stage_outputs_and_logged_model_handles_two_lengths(tmp_path, monkeypatch, features):
    torch.manual_seed(0)
    model = AlignmentModel(frame_rate=FRAME_RATE, n_performers=2, layers=1, **SMALL)
    run_stage(tmp_path, monkeypatch, features, "alignment", AlignmentTask(model, OPTIMIZER), model, 6)
    metrics = json.loads((tmp_path / "metrics/train_alignment.json").read_text())
    assert metrics["steps"] == 6 and np.isfinite(metrics["val_loss"])
    curve = pd.read_csv(tmp_path / "plots/train_alignment_loss.csv")
    assert set(curve.split) == {"train", "val"} and len(curve) >= 7
    assert (tmp_path / "plots/train_alignment_loss.png").stat().st_size > 5000
    rebuilt = load_model(tmp_path / "models/alignment/model.pt", AlignmentModel)
    for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)

    import mlflow

    info = json.loads((tmp_path / "models/alignment/mlflow.json").read_text())
    client = mlflow.MlflowClient()
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and "val_loss" in run.data.metrics and run.data.tags["git_commit"]
    logged = mlflow.pytorch.load_model(info["model_uri"]).eval()
    for n in (5, 17):  # variable input length
        pitch = torch.randint(40, 80, (2, n))
        onset = torch.arange(n).repeat(2, 1) * 12
        out = logged(
            pitch,
            onset,
            torch.full((2, n), 12),
            torch.ones(2, n, dtype=torch.bool),
            torch.tensor([0, 1]),
            torch.tensor([10, 12]),
        )
        assert out.shape == (2, n, 2) and torch.isfinite(out).all()


@pytest.mark.slow
def test_synthesis_stage_resumes_from_its_checkpoint(tmp_path, monkeypatch, features):
    torch.manual_seed(0)
    run_synthesis(tmp_path, monkeypatch, features, 3)
    first_run = json.loads((tmp_path / "models/synthesis/mlflow.json").read_text())["run_id"]
    run_synthesis(tmp_path, monkeypatch, features, 5)  # more steps: continues from step 3, in the same MLflow run
    metrics = json.loads((tmp_path / "metrics/train_synthesis.json").read_text())
    assert metrics["steps"] == 5 and metrics["steps_per_second"] > 0  # both sessions' steps and seconds
    assert json.loads((tmp_path / "models/synthesis/mlflow.json").read_text())["run_id"] == first_run
    steps = pd.read_csv(tmp_path / "plots/train_synthesis_loss.csv").query("split == 'train'").step.tolist()
    assert steps == [1, 2, 3, 4, 5]
    # after training, the level it falls short of the validation recordings by is measured and stored (the
    # calibration of the first run did not stop the second from resuming: it is not a setting)
    saved = load_model(tmp_path / "models/synthesis/model.pt", SynthesisModel)
    offset = saved.calibration.level_offset_db
    assert offset == metrics["level_offset_db"] and abs(offset) > 1.0
    assert "level_offset_db" not in saved.config()


@pytest.mark.slow
def test_changed_training_data_starts_afresh_instead_of_resuming(tmp_path, monkeypatch, features):
    from pipeline.training.run import data_fingerprint

    assert (
        data_fingerprint(features, extra=1)
        == data_fingerprint(features, extra=1)
        != data_fingerprint(features, extra=2)
    )
    # by content: a re-run upstream stage that writes the same bytes (new mtime) keeps the identity ...
    before = data_fingerprint(features, extra=1)
    first = sorted(p for p in Path(features).rglob("*") if p.is_file())[0]
    content = first.read_bytes()
    first.write_bytes(content)
    os.utime(first, (1, 1))
    assert data_fingerprint(features, extra=1) == before
    # ... and one changed byte changes it
    first.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    assert data_fingerprint(features, extra=1) != before
    first.write_bytes(content)
    runs = []
    for data_id in ("corpus-1", "corpus-2"):
        run_synthesis(tmp_path, monkeypatch, features, 2, data_id=data_id)
        runs.append(json.loads((tmp_path / "models/synthesis/mlflow.json").read_text())["run_id"])
    steps = pd.read_csv(tmp_path / "plots/train_synthesis_loss.csv").query("split == 'train'").step.tolist()
    assert steps == [1, 2]  # trained again from step 1, not "resumed" at the end of the old run
    assert runs[0] != runs[1]


@pytest.mark.slow
def test_changed_training_settings_start_afresh_but_more_steps_continue(tmp_path, monkeypatch, features):
    """A checkpoint written with another learning rate (or loss weight, or augmentation) is not
    resumed: its model is not what these settings train. Only how long and how often may change."""
    runs = []
    for learning_rate, steps in ((1.0, 2), (1.0, 3), (0.5, 3)):
        torch.manual_seed(0)
        run_synthesis(tmp_path, monkeypatch, features, steps, learning_rate=learning_rate)
        runs.append(json.loads((tmp_path / "models/synthesis/mlflow.json").read_text())["run_id"])
        train_steps = pd.read_csv(tmp_path / "plots/train_synthesis_loss.csv").query("split == 'train'").step.tolist()
        assert train_steps == list(range(1, steps + 1))
    assert runs[0] == runs[1] != runs[2]  # 2 -> 3 steps continued the run; the new rate started a new one


def test_clips_can_carry_the_audio_of_their_frames(tmp_path):
    """With ``audio_dir`` every clip has ``frames * 256`` samples starting at ``start * 256``."""
    from pipeline.audio import write_audio
    from pipeline.datasets.layout import Recording, write_manifest

    root = tmp_path / "features"
    root.mkdir()
    audio_dir = tmp_path / "audio16k"
    frames = 400
    signal = np.sin(np.arange(frames * 256) * 0.01).astype(np.float32) * 0.5
    signal[: 312 * 256] *= 0.2  # the first clip is quieter than the second
    (audio_dir / "audio").mkdir(parents=True)
    write_audio(audio_dir / "audio" / "r.wav", signal, 16000)
    write_manifest(
        audio_dir,
        [
            Recording(
                id="r",
                piece="p",
                performer="a",
                performer_id=0,
                audio="audio/r.wav",
                notes="",
                reference="",
                polyphonic=False,
                tempo_qpm=100.0,
            )
        ],
    )
    data = {
        "pitch": np.array([60], np.int16),
        "velocity": np.array([80], np.int16),
        "score_onset": np.array([0], np.int32),
        "score_duration": np.array([24], np.int32),
        "onset_frame": np.array([0], np.int32),
        "offset_frame": np.array([300], np.int32),
        "performer_id": np.int16(0),
    }
    save_features(root / "r.npz", np.zeros((80, frames), np.float32), data)
    pd.DataFrame(
        [
            {
                "id": "r",
                "piece": "p",
                "performer": "a",
                "performer_id": 0,
                "frames": frames,
                "notes": 1,
                "polyphonic": False,
                "tempo_qpm": 100.0,
            }
        ]
    ).to_csv(root / "index.csv", index=False)
    ds = ClipDataset(root, ["r"], audio_dir=audio_dir, **FRAMES)
    first, second = ds[0], ds[1]
    assert first["audio"].shape == (312 * 256,) and second["audio"].shape == (88 * 256,)
    np.testing.assert_allclose(second["audio"], signal[312 * 256 :], atol=1e-4)  # 16-bit WAV
    batch = collate_clips([first, second])
    assert batch["audio"].shape == (2, 312 * 256) and float(batch["audio"][1, 88 * 256 :].abs().max()) == 0.0


def test_ablations_override_the_full_model_and_unknown_names_fail(repo_root):
    from pipeline.config import load_params

    config = load_params(repo_root / "params.yaml").train_synthesis
    assert set(config.ablations) == {"no_notewise_pe", "no_performer_embedding", "no_encoder", "no_harmonic_prior"}
    no_encoder = config.ablation_model("no_encoder")
    assert no_encoder["use_encoder"] is False and no_encoder["d_model"] == config.model["d_model"]
    recipe = dict(sample_rate=16000, n_fft=1024, fmin=0.0, fmax=8000.0)  # filled in by the stage from params.mel
    SynthesisModel(n_performers=2, **{**no_encoder, **SMALL, **recipe})  # builds
    with pytest.raises(KeyError, match="unknown ablation 'no_mixer'"):
        config.ablation_model("no_mixer")
