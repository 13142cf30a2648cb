"""The evaluate table is its declared rows (pipeline/evaluation/rows.py): the table's order, the paired
comparisons, the model files hashed and the evaluate stage's model deps all follow from the records, so
a new row is one record plus its build function."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.evaluation import rows as r
from pipeline.evaluation import systems as sys_
from pipeline.evaluation.rows import DEEP_PERFORMER, Row, TableRows, evaluated_models, table_rows
from tests._params import PARAMS

REPO = Path(__file__).resolve().parents[1]
ABLATIONS = ["w/o note-wise PE", "w/o performer embedding", "w/o encoder", "w/o harmonic prior"]
SYSTEMS = [
    "Deep Performer",
    *ABLATIONS,
    "Deep Performer (HiFi-GAN V2)",
    "HiFi-GAN baseline",
    "PerformanceNet",
    "Vocoder reconstruction",
    "Vocoder reconstruction (HiFi-GAN V2)",
    "Griffin-Lim reconstruction",
    "Recording",
]
# docs/architecture.md and rows.py show adding a system to the table as this one record
FINE_TUNED = Row(
    "Fine-tuned",
    r.synthesis("synthesis_finetuned"),
    models=("synthesis_finetuned", "hifigan"),
    baseline_of=(DEEP_PERFORMER,),
)


def test_the_declared_table_its_comparisons_and_model_folders():
    rows = table_rows(PARAMS).for_source(PARAMS.data.source)
    assert list(PARAMS.train_synthesis.ablations) == [
        "no_notewise_pe",
        "no_performer_embedding",
        "no_encoder",
        "no_harmonic_prior",
    ]
    assert rows.names == [*SYSTEMS, "Constant tempo", "Constant tempo (exact tempo)"]
    # Deep Performer against each baseline and ablation and its timing against constant tempo; the vocoder
    # against its floor and against the paper's vocoder (system minus baseline, in this order in table2.md)
    assert rows.comparisons() == [
        *((DEEP_PERFORMER, name) for name in [*ABLATIONS, "Deep Performer (HiFi-GAN V2)", "HiFi-GAN baseline"]),
        (DEEP_PERFORMER, "PerformanceNet"),
        (DEEP_PERFORMER, "Constant tempo"),
        ("Vocoder reconstruction", "Griffin-Lim reconstruction"),
        ("Vocoder reconstruction", "Vocoder reconstruction (HiFi-GAN V2)"),
    ]
    assert sorted(rows.model_folders()) == sorted(
        [
            "alignment",
            "synthesis",
            *(f"synthesis_{a}" for a in PARAMS.train_synthesis.ablations),
            "hifigan",
            "hifigan_v2",
            "hifigan_baseline",
            "performancenet",
        ]
    )


def test_a_new_record_is_a_row_a_comparison_a_hashed_model_and_a_dep_of_the_stage(monkeypatch, tmp_path):
    declared = table_rows(PARAMS)
    rows = dataclasses.replace(declared, systems=(*declared.systems, FINE_TUNED))
    assert rows.names == [*SYSTEMS, "Fine-tuned", "Constant tempo", "Constant tempo (exact tempo)"]
    # Deep Performer against the systems, the new row after them, then against the timing rows
    assert rows.comparisons() == [
        *declared.comparisons()[:7],
        (DEEP_PERFORMER, "Fine-tuned"),
        *declared.comparisons()[7:],
    ]
    (tmp_path / "synthesis_finetuned").mkdir()
    (tmp_path / "synthesis_finetuned" / "model.pt").write_bytes(b"weights")
    assert evaluated_models(rows, tmp_path) == {"synthesis_finetuned": hashlib.md5(b"weights").hexdigest()}
    # dvc.yaml's evaluate deps are generated from the rows (scripts/stage_deps.py --write)
    sys.path.insert(0, str(REPO / "scripts"))
    import stage_deps

    monkeypatch.setattr(r, "table_rows", lambda params: rows)
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]["cmd"]
    models, deps = stage_deps.model_deps(cmd)
    assert models == "models" and "models/synthesis_finetuned" in deps


def test_the_evaluate_stage_depends_on_every_model_folder_its_rows_read_and_hashes_them(tmp_path):
    """dvc.yaml's evaluate deps under models/ are the rows' folders, so the stage runs after every model it
    reads is trained, and `evaluated_models` hashes exactly those files (`performer models register`
    tells an evaluation of these models from one of other models by them)."""
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]["deps"]
    folders = {d.split("/", 1)[1] for d in deps if d.startswith("models/")}
    assert folders == set(table_rows(PARAMS).model_folders())
    for i, folder in enumerate(sorted(folders)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.pt").write_bytes(b"weights %d" % i)
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "model.pt").write_bytes(b"not evaluated")
    recorded = evaluated_models(table_rows(PARAMS), tmp_path)
    assert set(recorded) == folders
    for folder, md5 in recorded.items():
        assert md5 == hashlib.md5((tmp_path / folder / "model.pt").read_bytes()).hexdigest()


def test_each_row_loads_exactly_the_model_folders_it_declares(monkeypatch, tmp_path):
    """Every build function, run with the model loading stubbed out, asks for the files of its row's
    ``models`` and no others (a model shared by rows is loaded once, by the first)."""
    from pipeline.models import persistence

    asked: list[str] = []

    def require(path: Path, system: str) -> Path:
        asked.append(path.parent.name)
        return path

    monkeypatch.setattr(sys_, "require_model", require)
    monkeypatch.setattr(persistence, "load_model", lambda path, cls: mock.MagicMock())
    monkeypatch.setattr(sys_, "load_vocoder_file", lambda path: mock.MagicMock())
    rows = table_rows(PARAMS)
    for row in rows.rows:
        asked.clear()
        row.build(PARAMS, sys_.ModelFolder(tmp_path))  # a fresh folder: nothing loaded yet
        assert sorted(asked) == sorted(row.models), row.name
    shared = sys_.ModelFolder(tmp_path)
    asked.clear()
    for row in rows.rows:
        row.build(PARAMS, shared)
    assert sorted(asked) == sorted(  # each vocoder and the alignment model once; a synthesis model per row
        ["alignment", "hifigan", "hifigan_v2", "hifigan_baseline", "performancenet", "synthesis", "synthesis"]
        + [f"synthesis_{a}" for a in PARAMS.train_synthesis.ablations]
    )


def test_rows_of_another_corpus_and_their_comparisons_are_left_out():
    declared = table_rows(PARAMS)
    maestro = Row("Piano only", r.recording, sources=("maestro",), baseline_of=(DEEP_PERFORMER,))
    rows = dataclasses.replace(declared, systems=(*declared.systems, maestro))
    assert "Piano only" in rows.for_source("maestro").names
    assert (DEEP_PERFORMER, "Piano only") in rows.for_source("maestro").comparisons()
    builtin = rows.for_source("builtin")
    assert builtin.names == declared.names and builtin.comparisons() == declared.comparisons()
    with pytest.raises(ValueError, match="unknown data source"):
        Row("x", r.recording, sources=("piano",))
    with pytest.raises(ValueError, match="does not have: \\['Deep Performr'\\]"):
        TableRows(systems=(Row("x", r.recording, baseline_of=("Deep Performr",)),), timing=())
    with pytest.raises(ValueError, match="declared twice"):
        TableRows(systems=(Row("x", r.recording), Row("x", r.griffin_lim)), timing=())


# ------------------------------------------------------------------ a new row through the whole evaluation

HOP = PARAMS.mel.hop_length
FRAMES = 250  # one clip per recording


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four one-performer recordings of a sine melody (features and 16 kHz audio) played exactly at the
    score's tempo (125 qpm: 1.25 frames a tick); one is the test split."""
    from pipeline.audio import write_audio
    from pipeline.datasets.layout import Recording, write_manifest
    from pipeline.features import save_features

    root = tmp_path_factory.mktemp("corpus")
    features, audio = root / "features", root / "audio16k"
    features.mkdir()
    (audio / "audio").mkdir(parents=True)
    rate = PARAMS.mel.sample_rate
    index, recordings = [], []
    for i in range(4):
        onset = np.arange(0, FRAMES - 25, 25)
        pitch = 60 + (np.arange(len(onset)) * 5 + i) % 12
        t = np.arange(FRAMES * HOP) / rate
        signal = np.zeros(FRAMES * HOP, np.float32)
        for on, p in zip(onset, pitch):
            part = slice(on * HOP, (on + 20) * HOP)
            signal[part] = 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t[part])
        write_audio(audio / "audio" / f"rec{i}.wav", signal, rate)
        recordings.append(
            Recording(f"rec{i}", f"piece{i}", "a", 0, f"audio/rec{i}.wav", "", "", tempo_qpm=125.0, polyphonic=False)
        )
        data = {
            "pitch": pitch.astype(np.int16),
            "velocity": np.full(len(onset), 80, np.int16),
            "score_onset": (np.arange(len(onset)) * 20).astype(np.int32),  # 25 frames
            "score_duration": np.full(len(onset), 16, np.int32),  # 20 frames
            "onset_frame": onset.astype(np.int32),
            "offset_frame": (onset + 20).astype(np.int32),
            "performer_id": np.int16(0),
        }
        save_features(features / f"rec{i}.npz", np.full((PARAMS.mel.n_mels, FRAMES), -6.0, np.float32), data)
        index.append(
            {
                "id": f"rec{i}",
                "piece": f"piece{i}",
                "performer": "a",
                "performer_id": 0,
                "frames": FRAMES,
                "notes": len(onset),
                "polyphonic": False,
                "tempo_qpm": 125.0,
            }
        )
    write_manifest(audio, recordings)
    pd.DataFrame(index).to_csv(features / "index.csv", index=False)
    return features, audio


def _scaled(gain: float):
    def build(params, models):
        ceiling = sys_.recording(params.mel.hop_length)
        return lambda batch: [sys_.ClipOutput(out.audio * gain) for out in ceiling(batch)]

    return build


def _late_tempo(params, models):
    exact = r.exact_tempo(params, models)

    def run(batch):
        onset, duration = exact(batch)
        return onset * 1.1, duration

    return run


def test_a_declared_row_appears_in_every_output_of_the_evaluation(corpus, tmp_path, monkeypatch):
    """A table of three small rows (the recording, a quieter copy as "Deep Performer", and one new record
    declared a baseline of it) and two timing rows, through `evaluate`: the new row is in every table file,
    in the paired differences, in the models hashed and in the listening report, with nothing but the
    records declared."""
    from pipeline.evaluation.run import evaluate
    from pipeline.evaluation.tables import TableOutputs

    features, audio = corpus
    models = tmp_path / "models"
    (models / "fake").mkdir(parents=True)
    (models / "fake" / "model.pt").write_bytes(b"fake weights")
    rows = TableRows(
        systems=(
            Row(DEEP_PERFORMER, _scaled(0.8)),
            Row("New system", _scaled(0.5), models=("fake",), baseline_of=(DEEP_PERFORMER,)),
            Row(r.CEILING, r.recording),
        ),
        timing=(
            Row(DEEP_PERFORMER, r.exact_tempo),
            Row("New timing", _late_tempo, baseline_of=(DEEP_PERFORMER,)),
        ),
    )
    split = dataclasses.replace(PARAMS.split, by="recording", stratify=False, test_share=0.25, validation_share=0.25)
    params = dataclasses.replace(
        PARAMS,
        split=split,
        evaluate=dataclasses.replace(PARAMS.evaluate, report_clips=1, bootstrap_resamples=50),
    )
    logged = []
    monkeypatch.setattr("pipeline.evaluation.run.log_to_mlflow", lambda *args: logged.append(args))
    outputs = TableOutputs(
        metrics=tmp_path / "evaluate.json",
        table_csv=tmp_path / "table2.csv",
        table_md=tmp_path / "table2.md",
        mse_plot=tmp_path / "mse.csv",
        timing_plot=tmp_path / "timing.csv",
    )
    evaluate(params, features, audio, models, outputs, tmp_path / "report", rows=rows)

    table = pd.read_csv(outputs.table_csv, index_col=0)
    assert list(table.index) == [DEEP_PERFORMER, "New system", "Recording", "New timing"]
    assert table.loc["Recording", "audio_mel_mse"] == 0 and table.loc["New system", "audio_mel_mse"] > 0
    assert table.loc[DEEP_PERFORMER, "onset_error_ms"] == table.loc[DEEP_PERFORMER, "duration_error_ms"] == 0
    assert table.loc["New timing", "onset_error_ms"] == pytest.approx(160.0)  # 10 % late: 10 frames on average
    metrics = json.loads(outputs.metrics.read_text())
    assert metrics["models"] == {"fake": hashlib.md5(b"fake weights").hexdigest()}
    assert set(metrics["differences"]) == {"deep_performer_vs_new_system", "deep_performer_vs_new_timing"}
    louder = metrics["differences"]["deep_performer_vs_new_system"]["audio_mel_mse"]
    assert louder["difference"] < 0  # 0.8 of the recording is closer to it than 0.5
    timing_difference = metrics["differences"]["deep_performer_vs_new_timing"]["onset_error_ms"]["difference"]
    assert timing_difference == pytest.approx(-table.loc["New timing", "onset_error_ms"], abs=1e-3)
    markdown = outputs.table_md.read_text()
    assert "| New system | " in markdown and "| Deep Performer vs New system | audio_mel_mse | " in markdown
    assert "| Deep Performer vs New timing | onset_error_ms | " in markdown
    assert list(pd.read_csv(outputs.mse_plot)["system"]) == [DEEP_PERFORMER, "New system", "Recording"]
    assert list(pd.read_csv(outputs.timing_plot)["system"]) == [DEEP_PERFORMER, "New timing"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "New system" in page and len(logged) == 1
