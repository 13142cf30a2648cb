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
    "FluidSynth (constant tempo)",
    "FluidSynth (alignment-model timing)",
    "FluidSynth (recording's timing)",
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
        *((DEEP_PERFORMER, name) for name in SYSTEMS if name.startswith("FluidSynth")),
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
        *declared.comparisons()[:10],
        (DEEP_PERFORMER, "Fine-tuned"),
        *declared.comparisons()[10:],
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
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def make_corpus(root: Path, delay_seconds=lambda i: 0.0, double_stop: bool = False):
    """The corpus of :func:`corpus` in ``root``; recording ``i``'s audio sounds ``delay_seconds(i)`` after
    its notes; ``double_stop``: every note's fifth sounds with it in the second half of each recording."""
    from pipeline.audio import write_audio
    from pipeline.datasets.layout import Recording, write_manifest
    from pipeline.features import save_features

    features, audio = root / "features", root / "audio16k"
    features.mkdir(parents=True)
    (audio / "audio").mkdir(parents=True)
    rate = PARAMS.mel.sample_rate
    index, recordings = [], []
    for i in range(4):
        onset = np.arange(0, FRAMES - 25, 25)
        pitch = 60 + (np.arange(len(onset)) * 5 + i) % 12
        score_onset = np.arange(len(onset)) * 20  # 25 frames
        if double_stop:  # the fifth above each note of the second half, sounding with it
            second = onset >= FRAMES // 2
            onset, score_onset = (
                np.concatenate([onset, onset[second]]),
                np.concatenate([score_onset, score_onset[second]]),
            )
            pitch = np.concatenate([pitch, pitch[second] + 7])
            order = np.argsort(onset, kind="stable")
            onset, score_onset, pitch = onset[order], score_onset[order], pitch[order]
        t = np.arange(FRAMES * HOP) / rate
        signal = np.zeros(FRAMES * HOP, np.float32)
        delay = int(round(delay_seconds(i) * rate))
        for on, p in zip(onset, pitch):
            part = slice(on * HOP + delay, (on + 20) * HOP + delay)
            signal[part] += 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t[: len(signal[part])])
        write_audio(audio / "audio" / f"rec{i}.wav", signal, rate)
        recordings.append(
            Recording(
                f"rec{i}", f"piece{i}", "a", 0, f"audio/rec{i}.wav", "", "", tempo_qpm=125.0, polyphonic=double_stop
            )
        )
        data = {
            "pitch": pitch.astype(np.int16),
            "velocity": np.full(len(onset), 80, np.int16),
            "score_onset": score_onset.astype(np.int32),
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
                "polyphonic": double_stop,
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
    assert "| New system | " in markdown and "| Deep Performer vs New system | mel MSE (audio) | " in markdown
    assert "| Deep Performer vs New timing | onset error (ms) | " in markdown
    assert list(pd.read_csv(outputs.mse_plot)["system"]) == [DEEP_PERFORMER, "New system", "Recording"]
    assert list(pd.read_csv(outputs.timing_plot)["system"]) == [DEEP_PERFORMER, "New timing"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "New system" in page and len(logged) == 1


# ------------------------------------------------------------------ what the evaluation measures


def _outputs(folder: Path):
    from pipeline.evaluation.tables import TableOutputs

    return TableOutputs(
        metrics=folder / "evaluate.json",
        table_csv=folder / "table2.csv",
        table_md=folder / "table2.md",
        mse_plot=folder / "mse.csv",
        timing_plot=folder / "timing.csv",
    )


def _small(params, **evaluate):
    split = dataclasses.replace(params.split, by="recording", stratify=False, test_share=0.25, validation_share=0.25)
    return dataclasses.replace(
        params,
        split=split,
        evaluate=dataclasses.replace(params.evaluate, report_clips=1, bootstrap_resamples=50, **evaluate),
    )


def test_the_fluidsynth_rows_score_in_every_column_even_with_double_stops(tmp_path, monkeypatch):
    """FluidSynth with the recording's timing and at the score's tempo, on a corpus whose clips all hold
    double stops: every system row has a value (with an interval) in every audio, score-following and
    pitch column, the pitch ones from the frames where one note sounds alone; the FluidSynth rows are
    compared with Deep Performer; the table names the corpus and the latency line."""
    from pipeline.evaluation.run import evaluate
    from pipeline.rendering import Instrument, render

    features, audio = make_corpus(tmp_path / "corpus", double_stop=True)
    rows = TableRows(
        systems=(
            Row(DEEP_PERFORMER, _scaled(0.8)),
            Row(r.FLUIDSYNTH_ALIGNED, r.fluidsynth(r.recorded_timing), baseline_of=(DEEP_PERFORMER,)),
            Row(r.FLUIDSYNTH_TEMPO, r.fluidsynth(r.exact_tempo), baseline_of=(DEEP_PERFORMER,)),
            Row(r.CEILING, r.recording),
        ),
        timing=(Row(DEEP_PERFORMER, r.exact_tempo),),
    )
    monkeypatch.setattr("pipeline.evaluation.run.log_to_mlflow", lambda *args: None)
    outputs = _outputs(tmp_path)
    evaluate(_small(PARAMS), features, audio, tmp_path / "models", outputs, tmp_path / "report", rows=rows)

    table = pd.read_csv(outputs.table_csv, index_col=0)
    scored = [
        "audio_mel_mse",
        "realism",
        "mr_stft",
        "note_onset_f1",
        "note_f1",
        "multipitch_accuracy",
        "raw_pitch_accuracy",
        "voicing_recall",
        "note_pitch_accuracy",
    ]
    for system in table.index:
        for column in scored:
            assert np.isfinite(table.loc[system, column]), (system, column)
            assert np.isfinite(table.loc[system, f"{column}_low"]), (system, column)
    for fluidsynth in (r.FLUIDSYNTH_ALIGNED, r.FLUIDSYNTH_TEMPO):
        assert np.isfinite(table.loc[fluidsynth, "mel_mse"])  # the mel of its audio, as the HiFi-GAN baseline's
        # the corpus is played at the score's tempo: both follow the score, at the latency of the sines'
        # hard attacks (0 ms) below the sines' 1.0 (a violin's onsets lag); their notes are right
        assert 0.6 <= table.loc[fluidsynth, "note_onset_f1"] < table.loc["Recording", "note_onset_f1"]
        assert (
            table.loc[fluidsynth, "note_pitch_accuracy"] >= 0.9 and table.loc[fluidsynth, "multipitch_accuracy"] > 0.5
        )
    # the two timings agree on a corpus played at the score's tempo: the same audio
    assert table.loc[r.FLUIDSYNTH_ALIGNED, "mr_stft"] == table.loc[r.FLUIDSYNTH_TEMPO, "mr_stft"]
    assert table.loc["Recording", "raw_pitch_accuracy"] >= 0.9 and table.loc["Recording", "audio_mel_mse"] == 0
    metrics = json.loads(outputs.metrics.read_text())
    assert {"deep_performer_vs_fluidsynth_recording_s_timing", "deep_performer_vs_fluidsynth_constant_tempo"} <= set(
        metrics["differences"]
    )
    assert metrics["recording"]["not_scored"] == {"mel_mse": {"the system makes no mel of its own": 1}}
    assert metrics["transcriber_latency"]["clips"] == 2  # the two training recordings' clips, not the test clip
    markdown = outputs.table_md.read_text()
    assert markdown.startswith("## deep-performer on the builtin corpus: 1 test clips of 1 recordings (1 performers)")
    assert "score-following note-onset F1" in markdown and "transcriber latency " in markdown

    # the rendering is FluidSynth with the alignment reference's instrument, at the recording clip's level
    from pipeline.evaluation.fluidsynth import clip_performance, render_clip

    perf, start = clip_performance(
        np.array([0.0, 25.0]),
        np.array([20.0, 20.0]),
        np.array([60, 65]),
        np.array([80, 80]),
        -5.0,
        HOP / PARAMS.mel.sample_rate,
        0.0,
    )
    assert start == pytest.approx(5 * HOP / PARAMS.mel.sample_rate)  # the first note began 5 frames before the clip
    assert perf.onset[1] - perf.onset[0] == pytest.approx(25 * HOP / PARAMS.mel.sample_rate)
    a = PARAMS.align
    instrument = Instrument(a.soundfont, program=a.program, reverb_send=a.reference_reverb)
    whole = render(perf, instrument, PARAMS.mel.sample_rate, tail=1.0).mean(axis=1)
    clip = render_clip(perf, start, 100 * HOP, instrument, PARAMS.mel.sample_rate)
    first = int(round(start * PARAMS.mel.sample_rate))
    np.testing.assert_array_equal(clip, whole[first : first + 100 * HOP])


def _short(params, models):
    ceiling = sys_.recording(params.mel.hop_length)
    return lambda batch: [sys_.ClipOutput(out.audio[:-1]) for out in ceiling(batch)]


def test_the_evaluation_writes_the_same_bytes_for_any_number_of_workers(tmp_path, monkeypatch):
    """The systems scored one process at a time and two at a time (forked workers): every table file and
    every sound of the listening report are the same bytes; a fault in a worker is the stage's one-line
    error, naming the system."""
    from pipeline.errors import PipelineError
    from pipeline.evaluation.run import evaluate

    features, audio = make_corpus(tmp_path / "corpus", double_stop=True)
    rows = TableRows(
        systems=(
            Row(DEEP_PERFORMER, _scaled(0.8)),
            Row(r.FLUIDSYNTH_TEMPO, r.fluidsynth(r.exact_tempo), baseline_of=(DEEP_PERFORMER,)),
            Row(r.FLOOR, r.griffin_lim),
            Row(r.CEILING, r.recording),
        ),
        timing=(Row(DEEP_PERFORMER, r.exact_tempo),),
    )
    monkeypatch.setattr("pipeline.evaluation.run.log_to_mlflow", lambda *args: None)
    written = {}
    for workers in (1, 2):
        folder = tmp_path / f"workers{workers}"
        params = _small(PARAMS, workers=workers)
        evaluate(params, features, audio, tmp_path / "models", _outputs(folder), folder / "report", rows=rows)
        written[workers] = {
            str(f.relative_to(folder)): f.read_bytes()
            for f in sorted(folder.rglob("*"))
            if f.is_file() and f.suffix in (".json", ".csv", ".md", ".wav")
        }
    assert len([name for name in written[1] if name.endswith(".wav")]) >= 4  # each system's report sound
    assert written[1].keys() == written[2].keys()
    for name, data in written[1].items():
        assert written[2][name] == data, name

    broken = dataclasses.replace(rows, systems=(*rows.systems, Row("Short", _short, baseline_of=(DEEP_PERFORMER,))))
    with pytest.raises(PipelineError, match=r"system 'Short', clip .*: output has \(\d+,\) samples"):
        evaluate(
            _small(PARAMS, workers=2),
            features,
            audio,
            tmp_path / "models",
            _outputs(tmp_path / "b"),
            tmp_path / "b" / "report",
            rows=broken,
        )


def _silent_rendering(params, models):
    ceiling = sys_.recording(params.mel.hop_length)
    return lambda batch: [sys_.ClipOutput(np.zeros_like(out.audio), may_be_silent=True) for out in ceiling(batch)]


def test_a_rendering_timed_out_of_its_clip_is_scored_as_silence_not_refused(tmp_path, monkeypatch):
    """FluidSynth at a timing that leaves the clip without a sounding note (a slow constant tempo on a
    clip of long notes): the row is scored, its silence worst on mel MSE, where a model's silent output
    fails the stage (the silence check catches broken models)."""
    from pipeline.errors import PipelineError
    from pipeline.evaluation.run import evaluate

    features, audio = make_corpus(tmp_path / "corpus")

    def silent(params, models):
        ceiling = sys_.recording(params.mel.hop_length)
        return lambda batch: [sys_.ClipOutput(np.zeros_like(out.audio)) for out in ceiling(batch)]

    rows = TableRows(
        systems=(
            Row(DEEP_PERFORMER, _scaled(0.8)),
            Row("Late FluidSynth", _silent_rendering, baseline_of=(DEEP_PERFORMER,)),
            Row(r.CEILING, r.recording),
        ),
        timing=(Row(DEEP_PERFORMER, r.exact_tempo),),
    )
    monkeypatch.setattr("pipeline.evaluation.run.log_to_mlflow", lambda *args: None)
    outputs = _outputs(tmp_path)
    evaluate(_small(PARAMS), features, audio, tmp_path / "models", outputs, tmp_path / "report", rows=rows)
    table = pd.read_csv(outputs.table_csv, index_col=0)
    assert table.loc["Late FluidSynth", "audio_mel_mse"] > table.loc[DEEP_PERFORMER, "audio_mel_mse"]
    assert table.loc["Late FluidSynth", "note_onset_f1"] == 0
    # FluidSynth's rows say their silence may be the timing's (the flag the row above stands for)
    from pipeline.datasets.clips import ClipDataset, collate_clips

    clips = ClipDataset(features, ["rec0"], audio_dir=audio, clip_frames=PARAMS.mel.clip_frames, hop_length=HOP)
    rendered = r.fluidsynth(r.exact_tempo)(PARAMS, None)(collate_clips([clips[0]]))
    assert rendered[0].may_be_silent and np.abs(rendered[0].audio).max() > 1e-3
    broken = dataclasses.replace(rows, systems=(*rows.systems, Row("Silent model", silent)))
    with pytest.raises(PipelineError, match=r"system 'Silent model', clip .*: output audio is silent"):
        evaluate(
            _small(PARAMS),
            features,
            audio,
            tmp_path / "models",
            _outputs(tmp_path / "b"),
            tmp_path / "b" / "report",
            rows=broken,
        )


def test_the_transcriber_latency_is_chosen_on_training_clips_not_on_the_test_clips(tmp_path, monkeypatch):
    """The training recordings sound 100 ms after their notes, the test recording on them: the latency is
    the training clips' (>= 50 ms: the onset tolerance is 50 ms), and every system, the recording included, is scored at it on the test
    clip (where it costs the recording onsets, which no per-system fit on the test clips would show)."""
    from pipeline.evaluation.latency import choose_latency
    from pipeline.evaluation.run import evaluate, read_clips, training_latency, transcriber

    params = _small(PARAMS)
    features, audio = make_corpus(tmp_path / "on time")
    test = read_clips(params, features, audio)
    (test_recording,) = test.split.test
    delayed = {r: 0.0 if r == test_recording else 0.1 for r in (f"rec{i}" for i in range(4))}
    features, audio = make_corpus(tmp_path / "mixed", delay_seconds=lambda i: delayed[f"rec{i}"])
    test = read_clips(params, features, audio)
    chosen = training_latency(params, test, features, audio)
    assert chosen.clips == 2 and chosen.recordings == 2
    assert chosen.latency >= 0.05 and chosen.f1[chosen.latency] >= 0.9 and chosen.f1[0.0] < 0.5
    # on the test recording itself (on time) the best latency would be another
    on_test = choose_latency(
        test.clips, 8, tuple(params.evaluate.transcription.latencies), transcriber(params), params.mel
    )
    assert on_test.latency < 0.05 and on_test.f1[on_test.latency] >= 0.9

    monkeypatch.setattr("pipeline.evaluation.run.log_to_mlflow", lambda *args: None)
    rows = TableRows(systems=(Row(r.CEILING, r.recording),), timing=())
    outputs = _outputs(tmp_path)
    evaluate(params, features, audio, tmp_path / "models", outputs, tmp_path / "report", rows=rows)
    metrics = json.loads(outputs.metrics.read_text())
    assert metrics["transcriber_latency"]["latency_ms"] == round(chosen.latency * 1000)
    assert metrics["recording"]["note_onset_f1"] < on_test.f1[on_test.latency]
