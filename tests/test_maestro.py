"""MAESTRO reader: a tiny release in the real layout (CSV, year folders, .midi + .wav)."""

import hashlib
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from _http_server import FileServer
from pipeline.config import DataConfig
from pipeline.datasets.layout import read_manifest, read_performers, read_reference
from pipeline.datasets.maestro import prepare_maestro, tick_seconds
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable
from tests._params import PARAMS

HEADER = ["canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename", "duration"]


def write_midi(path: Path, notes, tempos, ticks_per_beat=384):
    """Type-1 MIDI like MAESTRO's: a tempo track and a piano track. notes: (start, end, pitch, vel) ticks."""
    tempo_track = mido.MidiTrack()
    now = 0
    for tick, us_per_beat in tempos:
        tempo_track.append(mido.MetaMessage("set_tempo", tempo=us_per_beat, time=tick - now))
        now = tick
    tempo_track.append(mido.MetaMessage("end_of_track", time=0))
    events = []
    for start, end, pitch, vel in notes:
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=vel)))
        events.append((end, 0, mido.Message("note_on", note=pitch, velocity=0)))  # MAESTRO style note-off
    piano = mido.MidiTrack([mido.Message("program_change", program=0, time=0)])
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        piano.append(msg.copy(time=tick - now))
        now = tick
    piano.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.extend([tempo_track, piano])
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)


def mido_note_seconds(path: Path):
    """(onset s, offset s, pitch) of every note, from mido's own tempo handling (independent of the reader)."""
    now, active, out = 0.0, {}, []
    for msg in mido.MidiFile(path):  # iterating a MidiFile yields delta times in seconds
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            active.setdefault(msg.note, []).append(now)
        elif msg.type in ("note_on", "note_off"):
            out.append((active[msg.note].pop(0), now, msg.note))
    return sorted(out, key=lambda n: (round(n[0], 6), n[2]))


def write_wav(path: Path, seconds: float, rate: int):
    t = np.arange(int(seconds * rate)) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, stereo, rate, subtype="PCM_16")


def make_release(base: Path) -> Path:
    root = base / "maestro-v3.0.0"
    a = "2018/MIDI-Unprocessed_Recital1-3_MID--AUDIO_01_R1_2018_wav--1"
    b = "2004/MIDI-Unprocessed_SMF_02_R1_2004_01-05_ORIG_MID--AUDIO_02_R1_2004_05_Track05_wav"
    c = "2006/MIDI-Unprocessed_07_R1_2006_01-09_ORIG_MID--AUDIO_07_R1_2006_04_Track04_wav"
    # 2018: a tempo change at beat 2, a chord, a repeated note
    write_midi(
        root / f"{a}.midi",
        [(0, 300, 60, 80), (0, 300, 64, 70), (384, 700, 67, 90), (800, 1000, 67, 60), (1100, 1900, 72, 100)],
        [(0, 500000), (768, 400000)],
    )
    write_wav(root / f"{a}.wav", 2.5, 44100)
    write_midi(root / f"{b}.midi", [(10, 200, 48, 50), (200, 500, 50, 55), (500, 900, 52, 60)], [(0, 600000)], 480)
    write_wav(root / f"{b}.wav", 2.0, 48000)
    rows = [
        ["Frédéric Chopin", "Ballade No. 1", "train", 2018, f"{a}.midi", f"{a}.wav", 2.5],
        ["Johann Sebastian Bach", "Prelude and Fugue in C, WTC I", "validation", 2004, f"{b}.midi", f"{b}.wav", 2.0],
        ["Franz Liszt", "Sonata in B minor", "test", 2006, f"{c}.midi", f"{c}.wav", 1500.0],  # files absent
    ]
    pd.DataFrame(rows, columns=HEADER).to_csv(root / "maestro-v3.0.0.csv", index=False)
    return base


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("maestro"))


def config(**kw) -> DataConfig:
    m = {k: kw.pop(k) for k in ("url", "sha256", "splits", "max_recordings") if k in kw}
    return replace(PARAMS.data, source="maestro", maestro=replace(PARAMS.data.maestro, **m), **kw)


def check_layout(out: Path, root: Path):
    recordings = read_manifest(out)
    assert read_performers(out) == {"2004": 0, "2018": 1}
    table = pd.read_csv(root / "maestro-v3.0.0.csv").set_index("midi_filename")
    for rec in recordings:
        row = table.loc[next(m for m in table.index if Path(m).stem == rec.id)]
        assert rec.performer == str(row["year"]) and rec.source == "maestro"
        assert rec.piece == f"{row['canonical_title']}/{rec.id}"
        audio, rate = sf.read(out / rec.audio, dtype="float32")
        wav, wav_rate = sf.read(root / row["audio_filename"], dtype="float32")
        assert rate == wav_rate and audio.ndim == 1 and len(audio) == len(wav)
        assert np.abs(audio - wav.mean(axis=1)).max() < 1e-4
        notes = NoteTable.from_csv(out / rec.notes)
        onset, offset = read_reference(out / rec.reference)
        expected = mido_note_seconds(root / Path(row.name))
        assert len(notes) == len(onset) == len(expected)
        assert list(notes.pitch) == [p for *_, p in expected]
        assert onset == pytest.approx([s for s, _, _ in expected], abs=1e-6)
        assert offset == pytest.approx([e for _, e, _ in expected], abs=1e-6)
        assert rec.polyphonic == notes.is_polyphonic
    return {r.id: r for r in recordings}


def test_reads_a_release_from_root(release, tmp_path):
    out = tmp_path / "raw"
    recordings = prepare_maestro(config(root=str(release), splits=("train", "validation")), out)
    assert len(recordings) == 2
    by_id = check_layout(out, release / "maestro-v3.0.0")
    chopin = next(r for r in by_id.values() if r.performer == "2018")
    bach = next(r for r in by_id.values() if r.performer == "2004")
    assert (bach.performer_id, chopin.performer_id) == (0, 1)
    assert chopin.polyphonic and not bach.polyphonic
    # the tempo change (120 -> 150 qpm at beat 2) shows in the seconds: the note at tick 1100
    onset, _ = read_reference(out / chopin.reference)
    assert onset[-1] == pytest.approx(1.0 + (1100 - 768) / 384 * 0.4)
    assert bach.tempo_qpm == pytest.approx(100.0, abs=3)  # 600000 us per beat (onsets at 24 ticks a beat)


def test_split_filter_and_max_recordings(release, tmp_path):
    recordings = prepare_maestro(config(root=str(release / "maestro-v3.0.0"), splits=("validation",)), tmp_path / "v")
    assert [r.performer for r in recordings] == ["2004"] and recordings[0].performer_id == 0
    recordings = prepare_maestro(config(root=str(release), max_recordings=1), tmp_path / "one")
    assert [r.performer for r in recordings] == ["2018"]


def test_missing_audio_is_an_error_naming_the_file(release, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    root = broken / "maestro-v3.0.0"
    row = pd.read_csv(root / "maestro-v3.0.0.csv").iloc[2]  # the test split: no files at all
    write_midi(root / row["midi_filename"], [(0, 100, 60, 64)], [(0, 500000)])  # MIDI only, as in the -midi.zip
    with pytest.raises(PipelineError, match=r"audio file not found.*needs it") as err:
        prepare_maestro(config(root=str(broken)), tmp_path / "raw")
    assert str(root / row["audio_filename"]) in str(err.value)
    assert not (tmp_path / "raw" / "manifest.csv").exists()


def test_unknown_split_is_refused(release, tmp_path):
    with pytest.raises(PipelineError, match="unknown split"):
        prepare_maestro(config(root=str(release), splits=("training",)), tmp_path / "raw")


def test_midi_only_release_is_refused_before_downloading(tmp_path):
    url = "http://127.0.0.1:9/maestro-v3.0.0-midi.zip"  # nothing listens there; no request is made
    with pytest.raises(PipelineError, match=r"MIDI-only.*audio"):
        prepare_maestro(config(url=url, download_dir=str(tmp_path / "dl")), tmp_path / "raw")
    assert not (tmp_path / "dl").exists()


@pytest.mark.server
def test_download_verifies_sha256_and_reads(release, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "maestro-v3.0.0.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(release.rglob("*")):
            zf.write(path, path.relative_to(release).as_posix())
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    with FileServer(served) as server:
        cfg = config(
            url=server.url(archive.name), sha256=sha, download_dir=str(tmp_path / "dl"), splits=("train", "validation")
        )
        prepare_maestro(cfg, tmp_path / "raw")
    check_layout(tmp_path / "raw", tmp_path / "dl" / "maestro-v3.0.0" / "maestro-v3.0.0")


def test_tick_seconds_follows_the_tempo_map():
    # 120 qpm until tick 0 is overridden to 60, then 120 from beat 2 (resolution 10)
    seconds = tick_seconds(np.array([0, 10, 20, 30]), [(20, 120.0), (0, 60.0)], 10)
    assert seconds == pytest.approx([0.0, 1.0, 2.0, 2.5])
    # two events at one tick: the last in file order holds (90, not 30)
    assert tick_seconds(np.array([10, 20]), [(0, 60.0), (10, 30.0), (10, 90.0)], 10) == pytest.approx(
        [1.0, 1.0 + 2 / 3]
    )
    assert tick_seconds(np.array([0, 5]), [], 10) == pytest.approx([0.0, 0.25])  # MIDI default 120 qpm


def test_copy_of_release_without_midi_is_an_error(release, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    victim = next((broken / "maestro-v3.0.0" / "2004").glob("*.midi"))
    victim.unlink()
    with pytest.raises(PipelineError, match="MIDI file not found") as err:
        prepare_maestro(config(root=str(broken), splits=("validation",)), tmp_path / "raw")
    assert str(victim) in str(err.value)
