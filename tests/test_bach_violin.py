"""Bach Violin Dataset reader: the real on-disk layout, with short synthetic source recordings.

The tree mirrors the released ``bach-violin/`` folder. The one-movement sample of the real dataset
(tests/fixtures/bach-violin-sample, public domain, without its audio) adds its real notes, alignment,
tempo and score as one more movement, cut from the synthetic source. A movement without its source
audio is kept annotation-only. tests/test_bach_violin_real.py reads the real development copy.
"""

import hashlib
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from _http_server import FileServer
from pipeline.config import DataConfig
from pipeline.datasets.bach_violin import piece_of, prepare_bach_violin
from pipeline.datasets.cutting import parse_clock
from pipeline.datasets.layout import read_manifest, read_performers, read_reference
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable
from tests._params import PARAMS

REAL = Path(__file__).resolve().parent / "fixtures" / "bach-violin-sample"
REAL_NAME = "emil-telmanyi_bwv1006_mov5"
INFO_HEADER = (
    "filename,collection,violinist,violinist_name,work,title,mov,movement,source_filename,"
    "start,end,length,repeat1,repeat2,score_filename,baroque_tuning"
)
MP3_RATE, OPUS_RATE = 44100, 48000


def tone(seconds, rate):
    """Stereo test signal whose every sample differs (a misplaced cut would show)."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.3 + 0.2 * np.sin(2 * np.pi * 0.7 * t)
    return np.stack([envelope * np.sin(2 * np.pi * 440 * t), envelope * np.sin(2 * np.pi * 587 * t)], 1)


def write_movement(root, collection, name, notes, align, tempo):
    for sub in ("notes", "alignments"):
        (root / sub / collection).mkdir(parents=True, exist_ok=True)
    (root / "tempos" / collection).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(notes, columns=["onset", "offset", "pitch", "velocity"]).to_csv(
        root / "notes" / collection / f"{name}.csv", index=False
    )
    pd.DataFrame(align, columns=["start", "end"]).to_csv(root / "alignments" / collection / f"{name}.csv", index=False)
    (root / "tempos" / collection / f"{name}.txt").write_text(f"{tempo}\n")


def write_score(root, work, score_filename):
    (root / "scores" / work).mkdir(parents=True, exist_ok=True)
    (root / "scores" / work / f"{score_filename}.mxl").write_bytes(b"PK placeholder score")


def make_tree(base: Path) -> Path:
    """``base/bach-violin/`` in the released layout; returns ``base``."""
    root = base / "bach-violin"
    rows = []
    # Emil Telmanyi: one MP3 source, two (overlapping) movements cut from it
    (root / "audio" / "emil-telmanyi").mkdir(parents=True)
    sf.write(root / "audio" / "emil-telmanyi" / "emil-telmanyi_bwv1006.mp3", tone(6, MP3_RATE), MP3_RATE, format="MP3")
    write_movement(
        root,
        "emil-telmanyi",
        "emil-telmanyi_bwv1006_mov6",
        # a double stop listed high note first (the reader sorts notes and must carry the times along)
        [(0, 24, 71, 64), (0, 48, 64, 64), (24, 36, 69, 64), (36, 48, 68, 64), (48, 96, 66, 64)],
        [
            (
                0.064,
                0.5,
            ),
            (0.096, 0.992),
            (0.512, 0.704),
            (0.736, 0.736),
            (1.0, 1.9),
        ],  # one end == start
        96.5,
    )
    write_score(root, "bwv1006", "bwv1006_mov6_00")
    rows.append(
        "emil-telmanyi_bwv1006_mov6,emil-telmanyi,emil-telmanyi,Emil Telmányi,BWV1006,"
        "Partita No. 3 in E major,6,Bourrée,emil-telmanyi_bwv1006.mp3,0:00:03,0:00:05,0:00:02,0,0,"
        "bwv1006_mov6_00,1"
    )
    for sub in ("notes", "alignments", "tempos", "scores"):
        shutil.copytree(REAL / sub, root / sub, dirs_exist_ok=True)
    real = pd.read_csv(REAL / "info.csv").iloc[0].copy()
    real["start"], real["end"], real["length"] = "0:00:01", "0:00:04", "0:00:03"
    rows.insert(0, ",".join(str(v) for v in real.tolist()))
    # Karen Gomyo (collection isabella-stewart-gardner, not her own name): an Opus source
    (root / "audio" / "isabella-stewart-gardner").mkdir(parents=True)
    sf.write(
        root / "audio" / "isabella-stewart-gardner" / "karen-gomyo_bwv1001.opus",
        tone(3, OPUS_RATE),
        OPUS_RATE,
        format="OGG",
        subtype="OPUS",
    )
    write_movement(
        root,
        "isabella-stewart-gardner",
        "karen-gomyo_bwv1001_mov1",
        [(0, 12, 67, 64), (12, 24, 70, 64), (24, 48, 74, 64)],
        [(0.1, 0.4), (0.4, 0.7), (0.7, 1.5)],
        60.0,
    )
    write_score(root, "bwv1001", "bwv1001_mov1")
    rows.append(
        "karen-gomyo_bwv1001_mov1,isabella-stewart-gardner,karen-gomyo,Karen Gomyo,BWV1001,"
        "Sonata No. 1 in G minor,1,Adagio,karen-gomyo_bwv1001.opus,0:00:00,0:00:02,0:00:02,0,0,bwv1001_mov1,0"
    )
    # Shunske Sato: YouTube only, no audio in the archive
    write_movement(root, "shunske-sato", "shunske-sato_bwv1004_mov1", [(0, 24, 67, 64)], [(0.0, 0.5)], 80.0)
    write_score(root, "bwv1004", "bwv1004_mov1")
    rows.append(
        "shunske-sato_bwv1004_mov1,shunske-sato,shunske-sato,Shunske Sato,BWV1004,"
        "Partita No. 2 in D minor,1,Allemanda,shunske-sato_bwv1004.mp3,0:00:00,0:04:10,0:04:10,1,1,"
        "bwv1004_mov1,1"
    )
    (root / "info.csv").write_text(INFO_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return base


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("bach"))


def config(**kw) -> DataConfig:
    bach = {k: kw.pop(k) for k in ("url", "md5", "collections", "max_movements") if k in kw}
    return replace(PARAMS.data, source="bach-violin", bach_violin=replace(PARAMS.data.bach_violin, **bach), **kw)


def prepare_keeping_annotation_only(cfg, out):
    """The reader keeps the movement without audio: its notes and human timing, manifest audio ""."""
    recordings = prepare_bach_violin(cfg, out)
    sato = next(r for r in recordings if r.id == "shunske-sato_bwv1004_mov1")
    assert sato.audio == "" and not sato.has_audio and not (out / "audio" / f"{sato.id}.flac").exists()
    onset, offset = read_reference(out / sato.reference)
    assert onset.tolist() == [0.0] and offset.tolist() == [0.5]  # the dataset's own alignment
    assert sum(r.has_audio for r in recordings) == 3
    return recordings


def check_layout(out: Path, source_root: Path):
    recordings = read_manifest(out)
    by_id = {r.id: r for r in recordings}
    expected = {"emil-telmanyi_bwv1006_mov6", "karen-gomyo_bwv1001_mov1", "shunske-sato_bwv1004_mov1", REAL_NAME}
    assert set(by_id) == expected
    # one performer table for every violinist, annotation-only ones too
    assert read_performers(out) == {"emil-telmanyi": 0, "karen-gomyo": 1, "shunske-sato": 2}
    info = pd.read_csv(source_root / "info.csv").set_index("filename")
    for rec in recordings:
        row = info.loc[rec.id]
        assert rec.source == "bach-violin" and rec.piece == piece_of(row["score_filename"])
        assert rec.performer == row["violinist"]
        assert rec.tuning_cents == (-100.0 if row["baroque_tuning"] == 1 else 0.0)
        # audio: the cut, at the source rate, mono, exactly end - start long (none where the source is missing)
        source = source_root / "audio" / row["collection"] / row["source_filename"]
        assert rec.has_audio == source.is_file()
        if rec.has_audio:
            audio, rate = sf.read(out / rec.audio, dtype="float32")
            src, src_rate = sf.read(source, dtype="float32")
            start = round(parse_clock(row["start"], "", source) * rate)
            end = round(parse_clock(row["end"], "", source) * rate)
            assert rate == src_rate and audio.ndim == 1 and len(audio) == end - start
            assert np.abs(audio - src[start:end].mean(axis=1)).max() < 2e-4  # the right samples (16-bit)
        # notes and reference, same length and order; no note ends before it starts
        notes = NoteTable.from_csv(out / rec.notes)
        onset, offset = read_reference(out / rec.reference)
        raw = pd.read_csv(source_root / "notes" / row["collection"] / f"{rec.id}.csv")
        align = pd.read_csv(source_root / "alignments" / row["collection"] / f"{rec.id}.csv")
        assert len(notes) == len(onset) == len(raw) == len(align)
        assert np.all(offset > onset)
        assert np.all(np.diff(notes.onset) >= 0)
        tempo = float((source_root / "tempos" / row["collection"] / f"{rec.id}.txt").read_text())
        assert notes.tempo_qpm == pytest.approx(tempo, rel=1e-5) and rec.tempo_qpm == pytest.approx(tempo, abs=1e-3)
        assert rec.polyphonic == notes.is_polyphonic
        # every (onset, pitch) keeps its own alignment row after sorting
        pairs = {(o, p): (s, e) for o, p, s, e in zip(raw.onset, raw.pitch, align.start, align.end)}
        for o, p, s, e in zip(notes.onset, notes.pitch, onset, offset):
            want_s, want_e = pairs[(o, p)]
            assert s == pytest.approx(want_s) and e == pytest.approx(want_e if want_e > want_s else want_s + 0.032)
    return by_id


def test_reads_the_real_layout_and_keeps_movements_without_audio(tree, tmp_path):
    out = tmp_path / "raw"
    recordings = prepare_keeping_annotation_only(config(root=str(tree)), out)
    assert [r.id for r in recordings] == [r.id for r in read_manifest(out)]
    by_id = check_layout(out, tree / "bach-violin")
    mov6 = by_id["emil-telmanyi_bwv1006_mov6"]
    assert mov6.polyphonic and mov6.tuning_cents == -100.0 and mov6.performer_id == 0
    assert not by_id["karen-gomyo_bwv1001_mov1"].polyphonic
    assert by_id["karen-gomyo_bwv1001_mov1"].performer_id == 1
    onset, offset = read_reference(out / mov6.reference)
    assert offset[3] == pytest.approx(0.736 + 0.032)  # the clamped row (end == start)
    assert onset[:2] == pytest.approx([0.096, 0.064])  # the double stop, now low note first
    assert mov6.piece == "bwv1006_mov6"  # score bwv1006_mov6_00: the movement with other repeats
    real = by_id[REAL_NAME]
    assert real.polyphonic and real.tuning_cents == 0.0
    assert len(NoteTable.from_csv(out / real.notes)) == 356  # the sample's 356 notes


def test_root_may_be_the_bach_violin_folder_itself_and_filters_apply(tree, tmp_path):
    out = tmp_path / "raw"
    recordings = prepare_bach_violin(
        config(root=str(tree / "bach-violin"), collections=("isabella-stewart-gardner",)), out
    )
    assert [r.id for r in recordings] == ["karen-gomyo_bwv1001_mov1"]
    assert recordings[0].performer_id == 0
    recordings = prepare_bach_violin(config(root=str(tree), max_movements=1), tmp_path / "one")
    assert len(recordings) == 1 and recordings[0].performer == "emil-telmanyi"


def test_a_selection_without_any_audio_is_an_error_saying_why(tree, tmp_path):
    with pytest.raises(PipelineError, match=r"none of the 1 selected movement.*synthesis stages need"):
        prepare_bach_violin(config(root=str(tree), collections=("shunske-sato",)), tmp_path / "raw")
    assert not (tmp_path / "raw" / "manifest.csv").exists()


def test_piece_is_the_movement_whatever_its_repeats():
    assert piece_of("bwv1002_mov7_10") == piece_of("bwv1002_mov7_00") == piece_of("bwv1002_mov7") == "bwv1002_mov7"
    assert piece_of("bwv1004_mov5") == "bwv1004_mov5"


def test_unknown_collection_is_named(tree, tmp_path):
    with pytest.raises(PipelineError, match=r"unknown collection.*nobody"):
        prepare_bach_violin(config(root=str(tree), collections=("nobody",)), tmp_path / "raw")


@pytest.mark.parametrize(
    "victim",
    [
        "notes/emil-telmanyi/emil-telmanyi_bwv1006_mov6.csv",
        "alignments/isabella-stewart-gardner/karen-gomyo_bwv1001_mov1.csv",
        "scores/bwv1006/bwv1006_mov6_00.mxl",
    ],
)
def test_missing_file_named_by_info_is_an_error_naming_it(tree, tmp_path, victim):
    broken = tmp_path / "broken"
    shutil.copytree(tree, broken)
    (broken / "bach-violin" / victim).unlink()
    with pytest.raises(PipelineError) as err:
        prepare_bach_violin(config(root=str(broken)), tmp_path / "raw")
    assert str(broken / "bach-violin" / victim) in str(err.value)


def test_notes_and_alignment_of_different_length_are_refused(tree, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tree, broken)
    path = broken / "bach-violin" / "alignments" / "isabella-stewart-gardner" / "karen-gomyo_bwv1001_mov1.csv"
    path.write_text("start,end\n0.1,0.4\n")
    with pytest.raises(PipelineError, match="1 rows but the notes file has 3"):
        prepare_bach_violin(config(root=str(broken)), tmp_path / "raw")


def zip_tree(tree: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((tree / "bach-violin").rglob("*")):
            zf.write(path, path.relative_to(tree).as_posix())
    return archive


@pytest.mark.server
def test_download_resumes_verifies_extracts_and_reads(tree, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    archive = zip_tree(tree, served / "bach-violin-dataset-v1.0.zip")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    download_dir = tmp_path / "download"
    with FileServer(served) as server:
        server.cut_once.add("/bach-violin-dataset-v1.0.zip")  # first transfer dies halfway
        url = server.url("bach-violin-dataset-v1.0.zip")
        prepare_keeping_annotation_only(config(url=url, md5=md5, download_dir=str(download_dir)), tmp_path / "raw")
        log = server.gets("/bach-violin-dataset-v1.0.zip")
        # a second run reuses the extracted copy: no more requests
        prepare_keeping_annotation_only(config(url=url, md5=md5, download_dir=str(download_dir)), tmp_path / "again")
        assert len(server.gets("/bach-violin-dataset-v1.0.zip")) == len(log)
    assert [status for *_, status in log] == [200, 206] and log[1][1].startswith("bytes=")
    assert hashlib.md5((download_dir / archive.name).read_bytes()).hexdigest() == md5
    assert sorted(p.name for p in download_dir.iterdir()) == ["bach-violin-dataset-v1.0", archive.name]
    check_layout(tmp_path / "raw", download_dir / "bach-violin-dataset-v1.0" / "bach-violin")


@pytest.mark.server
def test_download_with_wrong_md5_is_refused_and_nothing_kept(tree, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    zip_tree(tree, served / "bach.zip")
    download_dir = tmp_path / "download"
    with FileServer(served) as server:
        url = server.url("bach.zip")
        with pytest.raises(PipelineError, match="md5 mismatch") as err:
            prepare_bach_violin(config(url=url, md5="0" * 32, download_dir=str(download_dir)), tmp_path / "raw")
    assert url in str(err.value) and "0" * 32 in str(err.value)
    assert list(download_dir.rglob("*")) == []
    assert not (tmp_path / "raw" / "manifest.csv").exists()


def test_parse_clock():
    assert parse_clock("0:13:55", "", Path("x")) == 835.0
    assert parse_clock("1:02:03.5", "", Path("x")) == 3723.5
    assert parse_clock("07:30", "", Path("x")) == 450.0
    with pytest.raises(PipelineError, match="H:MM:SS"):
        parse_clock("13m55", "start", Path("info.csv"))
