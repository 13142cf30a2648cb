"""``data.source: folder``: your own recordings and scores (pipeline/datasets/folder.py).

The layout and its one-line errors on small sine-tone folders; then the README's worked example: a
folder of two pieces x two performers rendered with FluidSynth on a cello, at random tempi, with no
reference, through prepare -> resample -> align -> mel -> training -> `performer render` by `dvc repro`
in a temporary copy of the project.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import mido
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from pipeline.config import load_params
from pipeline.datasets.folder import UnrecordedScoresWarning, prepare_folder
from pipeline.datasets.layout import read_manifest, read_performers
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable

RATE = 22050


def write_midi(path: Path, pitches: list[int], qpm: float = 120.0, program: int = 0, quarter: int = 480) -> None:
    """A one-track MIDI file: ``pitches`` as consecutive quarter notes (none: a note-less score)."""
    track = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0),
            mido.Message("program_change", program=program, time=0),
        ]
    )
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=quarter))
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=quarter)
    midi.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)


def write_tone(path: Path, seconds: float, silence: float = 0.0, rate: int = RATE) -> None:
    """A 220 Hz tone of ``seconds`` between ``silence`` seconds of silence on each side."""
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * t)
    pad = np.zeros(int(silence * rate))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate([pad, tone, pad]).astype(np.float32), rate)


@pytest.fixture
def folder(tmp_path):
    """scores: etude (8 quarters at 120 qpm = 4 s), song (4 quarters); recordings by zoe and adam."""
    root = tmp_path / "recordings"
    write_midi(root / "scores" / "etude.mid", [60, 62, 64, 65, 67, 69, 71, 72])
    write_midi(root / "scores" / "song.mid", [67, 65, 64, 62])
    write_tone(root / "zoe" / "etude.wav", 5.0, silence=0.5)  # 8 quarters in 5 s: 96 qpm
    write_tone(root / "zoe" / "song.flac", 2.0)
    write_tone(root / "adam" / "etude.ogg", 4.0)
    return root


def test_a_folder_becomes_the_normalised_layout(folder, tmp_path):
    (folder / "pieces.csv").write_text(
        "piece,performer,tuning,program,start,end\netude,,-100,42,,\netude,zoe,-100,42,0:00.5,5.5\n"
    )
    out = tmp_path / "raw"
    recordings = prepare_folder(str(folder), out)
    assert [r.id for r in recordings] == ["etude__adam", "etude__zoe", "song__zoe"]
    assert read_performers(out) == {"adam": 0, "zoe": 1}  # sorted names
    rows = {r.id: r for r in read_manifest(out)}
    assert set(rows) == {r.id for r in recordings}
    zoe = rows["etude__zoe"]
    assert (zoe.tuning_cents, zoe.program, zoe.reference, zoe.source) == (-100.0, 42, "", "folder")
    assert rows["song__zoe"].program == -1 and rows["song__zoe"].tuning_cents == 0.0
    # the start/end of pieces.csv cut the silence off: 5 s of tone left, at the file's own rate
    info = sf.info(out / zoe.audio)
    assert (info.samplerate, info.format) == (RATE, "FLAC")
    assert info.frames == pytest.approx(5.0 * RATE, abs=2)
    # tempo: 8 quarters over the sounding 5 s (zoe) and 4 s (adam)
    assert zoe.tempo_qpm == pytest.approx(96.0, rel=0.02)
    assert rows["etude__adam"].program == 42  # the piece's row; zoe's own row cut her recording only
    assert rows["etude__adam"].tempo_qpm == pytest.approx(120.0, rel=0.02)
    notes = NoteTable.from_csv(out / zoe.notes)
    assert notes.pitch.tolist() == [60, 62, 64, 65, 67, 69, 71, 72] and not zoe.polyphonic


def test_a_tempo_in_pieces_csv_wins_over_the_estimate(folder, tmp_path):
    (folder / "pieces.csv").write_text("piece,tempo\nsong,75.5\n")
    rows = {r.id: r for r in prepare_folder(str(folder), tmp_path / "raw")}
    assert rows["song__zoe"].tempo_qpm == 75.5


def test_an_m4a_recording_is_read_through_ffmpeg(folder, tmp_path):
    import av

    (folder / "adam" / "etude.ogg").unlink()
    t = np.arange(3 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    with av.open(str(folder / "adam" / "etude.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    rows = {r.id: r for r in prepare_folder(str(folder), tmp_path / "raw")}
    audio, rate = sf.read(tmp_path / "raw" / rows["etude__adam"].audio)
    assert rate == RATE and len(audio) == pytest.approx(3 * RATE, abs=4096)  # AAC adds its priming
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: write_tone(r / "zoe" / "fugue.wav", 1.0), "zoe/fugue.wav: no score for this recording"),
        (lambda r: write_midi(r / "scores" / "etude.mid", []), "scores/etude.mid: score holds no notes"),
        (lambda r: (r / "adam" / "song.wav").write_bytes(b"not audio"), "adam/song.wav: not a readable audio file"),
        (
            lambda r: write_tone(r / "zoe" / "song.wav", 1.0),
            "two files for the same recording (song.flac and song.wav)",
        ),
        (lambda r: write_tone(r / "zoe" / "my piece.wav", 1.0), "piece name 'my piece' is not a safe file name"),
        (lambda r: write_tone(r / "zoe" / "a__b.wav", 1.0), "piece name 'a__b' is not a safe file name"),
        (lambda r: write_tone(r / "zoé" / "song.wav", 1.0), "performer name 'zoé' is not a safe file name"),
        (lambda r: (r / "scores" / "song.mid").write_bytes(b"MThd garbage"), "scores/song.mid: not a readable MIDI"),
        (lambda r: (r / "pieces.csv").write_text("piece,speed\nsong,2\n"), "pieces.csv: columns must be piece"),
        (lambda r: (r / "pieces.csv").write_text("piece,program\nsong,200\n"), "program must be a General MIDI"),
        (lambda r: (r / "pieces.csv").write_text("piece,tempo\nsong,fast\n"), "piece 'song': tempo 'fast' is not"),
        (lambda r: (r / "pieces.csv").write_text("piece\nsong\nsong\n"), "piece 'song' is listed twice"),
        (lambda r: (r / "pieces.csv").write_text("piece,performer\nsong,adam\n"), "song' by adam: no such recording"),
        (lambda r: (r / "pieces.csv").write_text("piece\nsonata\n"), "piece 'sonata' has no score in scores/"),
        (lambda r: (r / "pieces.csv").write_text("piece,start,end\nsong,3,1\n"), "end 1 s is not after start 3 s"),
        (lambda r: shutil.rmtree(r / "scores"), "no scores/ folder of scores"),
    ],
)
def test_each_fault_is_one_line_naming_the_file(folder, tmp_path, change, message):
    change(folder)
    out = tmp_path / "raw"
    with pytest.raises(PipelineError) as err:
        prepare_folder(str(folder), out)
    assert message in str(err.value).replace(str(folder) + os.sep, "")
    assert "\n" not in str(err.value)
    assert not (out / "manifest.csv").exists()  # nothing a later stage would take for a corpus


def test_scores_nobody_recorded_are_listed_in_one_warning(folder, tmp_path):
    write_midi(folder / "scores" / "minuet.mid", [60, 64])
    write_midi(folder / "scores" / "gigue.mid", [62, 65])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recordings = prepare_folder(str(folder), tmp_path / "raw")
    unrecorded = [w for w in caught if issubclass(w.category, UnrecordedScoresWarning)]
    assert len(unrecorded) == 1 and "gigue, minuet" in str(unrecorded[0].message)
    assert len(recordings) == 3


def test_no_root_or_no_recordings_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match=r"data\.root must name the folder"):
        prepare_folder(None, tmp_path / "raw")
    with pytest.raises(PipelineError, match="recordings folder not found"):
        prepare_folder(str(tmp_path / "nowhere"), tmp_path / "raw")
    write_midi(tmp_path / "empty" / "scores" / "a.mid", [60])
    with pytest.raises(PipelineError, match="no recordings"):
        prepare_folder(str(tmp_path / "empty"), tmp_path / "raw")


def test_the_folder_source_is_a_known_setting(repo_root):
    params = load_params(repo_root / "params.yaml")
    dataclasses.replace(params.data, source="folder")  # validates
    with pytest.raises(PipelineError, match="builtin, bach-violin, maestro, folder"):
        dataclasses.replace(params.data, source="folders")


# ------------------------------------------------------------------ the README's worked example, end to end

CELLO = 42
TINY_TRANSFORMER = dict(d_model=32, attention_dim=16, ffn_dim=32, heads=2, dropout=0.0)
TINY_TRAIN = dict(max_steps=3, batch_size=2, validate_every=3, checkpoint_every=3)


def _run(cmd, cwd):
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        PYTHONPATH=str(cwd),
        MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}",
        OMP_NUM_THREADS="1",
    )
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def make_cello_folder(root: Path) -> None:
    """Two pieces x two performers on a FluidSynth cello, each at its own random tempo and timing."""
    from pipeline.performers import get_performer
    from pipeline.rendering import Instrument, render
    from pipeline.scores import read_score

    rng = np.random.default_rng(7)
    pieces = {
        "prelude": [48, 50, 52, 53, 55, 53, 52, 50, 48, 55, 57, 59, 60, 55, 52, 48],
        "sarabande": [43, 47, 50, 55, 54, 52, 50, 48, 47, 45, 43, 50, 55, 59, 57, 55],
    }
    for piece, pitches in pieces.items():
        write_midi(root / "scores" / f"{piece}.mid", pitches, qpm=100.0)
    (root / "pieces.csv").write_text(f"piece,program\nprelude,{CELLO}\nsarabande,{CELLO}\n")
    for name, base in (("ilse", "aurora"), ("omar", "bruno")):
        player = dataclasses.replace(
            get_performer(base),
            name=name,
            instrument=Instrument("FluidR3_GM.sf2", program=CELLO, reverb_send=30),
            tempo_factor=float(rng.uniform(0.75, 1.3)),
            jitter_ms=15.0,
        )
        for piece in pieces:
            notes = read_score(root / "scores" / f"{piece}.mid")
            audio = render(player.perform(notes, seed=int(rng.integers(1000))), player.instrument, RATE)
            (root / name).mkdir(parents=True, exist_ok=True)
            sf.write(root / name / f"{piece}.flac", audio, RATE)


@pytest.mark.slow
def test_your_own_recordings_train_and_render_through_dvc(tmp_path, repo_root):
    recordings = tmp_path / "my-recordings"
    make_cello_folder(recordings)
    project = tmp_path / "project"
    for name in ("pipeline", "stages"):
        shutil.copytree(repo_root / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(repo_root / name, project / name)
    params = yaml.safe_load((project / "params.yaml").read_text())
    # what the README's `dvc exp run -S data.source=folder -S data.root=...` sets, and tiny models
    params["data"].update(source="folder", root=str(recordings))
    params["split"] = {"by": "recording", "test_share": 0.25, "validation_share": 0.25, "stratify": False, "seed": 0}
    params["split"].update(test_pieces=[], validation_pieces=[])
    params["train_alignment"]["model"] = dict(layers=1, **TINY_TRANSFORMER)
    params["train_synthesis"]["model"] = dict(encoder_layers=1, decoder_layers=1, **TINY_TRANSFORMER)
    params["train_hifigan"]["generator"] = {"channels": 16, "layers": 1}
    params["train_hifigan"]["discriminator_start"] = 3
    for group in ("train_alignment", "train_synthesis", "train_hifigan"):
        params[group]["train"].update(TINY_TRAIN)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        _run(cmd, project)

    log = _run(["dvc", "repro", "train_alignment", "train_synthesis", "train_hifigan"], project)
    for stage in ("prepare", "resample", "align", "mel", "train_alignment", "train_synthesis", "train_hifigan"):
        assert f"Running stage '{stage}'" in log
    manifest = pd.read_csv(project / "data/raw/manifest.csv")
    assert sorted(manifest.id) == ["prelude__ilse", "prelude__omar", "sarabande__ilse", "sarabande__omar"]
    assert set(manifest.program) == {CELLO} and set(manifest.reference.fillna("")) == {""}
    assert json.loads((project / "data/raw/performers.json").read_text()) == {"ilse": 0, "omar": 1}
    # aligned (no reference to score against): every note in order, inside its recording
    for rec in manifest.itertuples():
        alignment = pd.read_csv(project / "data/alignments" / f"{rec.id}.csv")
        seconds = sf.info(project / "data/audio16k/audio" / f"{rec.id}.wav").duration
        assert len(alignment) == 16 and np.all(np.diff(alignment.onset) > 0)
        assert alignment.onset.min() >= 0 and alignment.offset.max() <= seconds + 0.05
    index = pd.read_csv(project / "data/features/index.csv")
    assert len(index) == 4

    out = tmp_path / "prelude.wav"
    line = _run(
        [
            "performer",
            "render",
            str(recordings / "scores" / "prelude.mid"),
            "-o",
            str(out),
            "--performer",
            "omar",
            "--models",
            "models",
        ],
        project,
    )
    assert "performer omar" in line
    audio, rate = sf.read(out)
    assert rate == params["mel"]["sample_rate"] and len(audio) / rate > 3.0
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() > 0
