"""Alignment confidence (pipeline/alignment/confidence.py): a recording paired with the wrong score, or
holding a long passage its score does not have, is flagged under ``align.min_confidence``; the right pair
is not; the mel stage leaves flagged recordings out of training, names them, and the report lists them.

Small recordings as in tests/test_alignment.py: a score played by a virtual performer and rendered with
FluidSynth (about 25 s each; an alignment takes well under a second)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.alignment.align import NoteAlignment, align_score_to_audio
from pipeline.audio import write_audio
from pipeline.datasets.confidence import LOW_CONFIDENCE, read_left_out
from pipeline.datasets.layout import Recording, write_manifest
from pipeline.performers import get_performer
from pipeline.rendering import Instrument, Performance, render
from pipeline.scores import NoteTable
from tests._params import PARAMS

RATE = 16000
MIN_CONFIDENCE = PARAMS.align.min_confidence
UNSCORED_SECONDS = 8.0


def melody(seed: int, name: str, n: int = 48) -> NoteTable:
    """A random melody in G major (quarters, eighths, dotted quarters) at 100 qpm: two seeds, two pieces
    with the same pitch material, so only their order tells them apart."""
    rng = np.random.default_rng(seed)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    degree = np.cumsum(rng.choice([-3, -2, -1, 1, 2, 3], n)) % 14 + 7
    pitch = 55 + 12 * (degree // 7) + scale[degree % 7]
    duration = rng.choice([12, 12, 24, 36], n)
    onset = np.r_[0, np.cumsum(duration)[:-1]]
    return NoteTable(onset, duration, pitch, np.full(n, 90), np.zeros(n), tempo_qpm=100, name=name)


PIECE, OTHER_PIECE = melody(1, "piece"), melody(2, "other")


@cache
def played(performer: str) -> tuple[np.ndarray, Performance]:
    """``PIECE`` played by ``performer``: mono audio at RATE and the performance (its true note times)."""
    player = get_performer(performer)
    performance = player.perform(PIECE, seed=0)
    return render(performance, player.instrument, RATE).mean(axis=1), performance


def applause(seconds: float, rms: float) -> np.ndarray:
    """Applause-like noise: 40 short decaying noise bursts per second at random times, at ``rms``."""
    rng = np.random.default_rng(0)
    out = np.zeros(int(seconds * RATE), np.float32)
    clap = int(0.03 * RATE)
    envelope = np.exp(-np.arange(clap) / (0.006 * RATE))
    for start in rng.integers(0, len(out) - clap, int(40 * seconds)):
        out[start : start + clap] += rng.normal(0, 1, clap) * envelope * rng.uniform(0.3, 1.0)
    return (out * rms / np.sqrt(np.mean(out**2))).astype(np.float32)


def tuning_a(seconds: float, rms: float) -> np.ndarray:
    """A held A4 on a FluidSynth violin, at ``rms``."""
    tone = Performance(np.array([0.0]), np.array([seconds]), np.array([69]), np.array([80]))
    audio = render(tone, Instrument("FluidR3_GM.sf2", program=40, reverb_send=20), RATE, tail=0.0).mean(axis=1)
    audio = audio[: int(seconds * RATE)]
    return (audio * rms / np.sqrt(np.mean(audio**2))).astype(np.float32)


def with_passage(performer: str, passage: str, before_note: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The recording with UNSCORED_SECONDS of ``passage`` inserted halfway between two notes (at the start
    for note 0); returns the audio, the true onsets and where the passage starts (seconds)."""
    audio, performance = played(performer)
    rms = float(np.sqrt(np.mean(audio**2)))
    inserted = applause(UNSCORED_SECONDS, rms) if passage == "applause" else tuning_a(UNSCORED_SECONDS, rms)
    onset = performance.onset
    at = 0.5 * (onset[before_note - 1] + onset[before_note]) if before_note else 0.0
    cut = int(at * RATE)
    mixed = np.concatenate([audio[:cut], inserted, audio[cut:]])
    return mixed, np.where(onset >= at, onset + UNSCORED_SECONDS, onset), at


def align(notes: NoteTable, audio: np.ndarray) -> NoteAlignment:
    return align_score_to_audio(notes, audio, RATE, PARAMS.align)


@pytest.mark.parametrize("performer", ["aurora", "chiara"])
def test_the_right_score_is_trusted_and_the_wrong_one_flagged(performer):
    """chiara (TimGM6mb) had the lowest confidences of the built-in corpus (docs/benchmarks.md)."""
    audio, performance = played(performer)
    right = align(PIECE, audio)
    assert np.median(np.abs(right.onset - performance.onset)) < 0.03  # the alignment itself is good
    assert right.confidence >= MIN_CONFIDENCE + 0.2, right.confidence
    assert np.median(right.note_confidence) >= MIN_CONFIDENCE + 0.2
    assert right.note_confidence.shape == (len(PIECE),)
    assert np.all((right.note_confidence >= 0) & (right.note_confidence <= 1))

    wrong = align(OTHER_PIECE, audio)
    assert wrong.confidence < MIN_CONFIDENCE - 0.1, wrong.confidence
    assert 0.0 <= wrong.confidence <= 1.0


@pytest.mark.parametrize(
    ("passage", "before_note"),
    [("applause", 24), ("tuning", 0), ("tuning", 24)],
    ids=["applause-in-the-middle", "tuning-A-at-the-start", "tuning-A-in-the-middle"],
)
def test_a_long_unscored_passage_is_flagged_and_the_notes_around_it_are_the_distrusted_ones(passage, before_note):
    """8 s the score does not hold: DTW cannot skip it, so it drags the notes next to it into it (seconds
    off: not aligned within tolerance around it); the path stalls there, which flags the recording, and
    the per-note confidence is low at exactly those notes while the notes away from it keep theirs."""
    audio, truth, at = with_passage("aurora", passage, before_note)
    result = align(PIECE, audio)
    error = np.abs(result.onset - truth)
    misplaced = np.flatnonzero(error > 0.1)
    assert 1 <= len(misplaced) <= 4 and error.max() > 1.0  # the failure is local, and it is a failure
    assert result.confidence < MIN_CONFIDENCE, result.confidence
    assert np.all(result.note_confidence[misplaced] < MIN_CONFIDENCE)
    away = np.abs(truth - (at + UNSCORED_SECONDS / 2)) > UNSCORED_SECONDS / 2 + 3.0  # 3 s or more from it
    assert np.all(error[away] < 0.1)
    assert np.median(result.note_confidence[away]) >= MIN_CONFIDENCE + 0.2


# ------------------------------------------------------------------ the stages: align -> mel -> report


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A raw corpus and its 16 kHz audio folder: one recording with its own score, one paired with the
    score of another piece (the mix-up the confidence exists for)."""
    root = tmp_path_factory.mktemp("corpus")
    raw, audio16k = root / "raw", root / "audio16k"
    recordings = []
    for rec_id, score in (("good", PIECE), ("mixed_up", OTHER_PIECE)):
        score.to_csv(raw / "notes" / f"{rec_id}.csv")
        write_audio(audio16k / "audio" / f"{rec_id}.wav", played("aurora")[0], RATE)
        recordings.append(
            Recording(
                id=rec_id,
                piece=score.name,
                performer="aurora",
                performer_id=0,
                audio=f"audio/{rec_id}.wav",
                notes=f"notes/{rec_id}.csv",
                reference="",
                tempo_qpm=100.0,
                polyphonic=False,
            )
        )
    write_manifest(raw, recordings)
    write_manifest(audio16k, recordings)
    return root


def test_the_align_stage_writes_the_confidence_and_the_mel_stage_leaves_the_mix_up_out(corpus, capsys):
    from stages import align as align_stage
    from stages import mel as mel_stage

    raw, audio16k = corpus / "raw", corpus / "audio16k"
    alignments, metrics = corpus / "alignments", corpus / "metrics"
    align_stage.run(PARAMS, raw, audio16k, alignments, metrics / "align.json", corpus / "plots" / "cdf.csv")
    printed = capsys.readouterr().out
    assert f"1 of 2 under align.min_confidence {MIN_CONFIDENCE:g}: mixed_up" in printed

    # every note keeps its columns, in order, and gains its confidence
    for rec_id in ("good", "mixed_up"):
        frame = pd.read_csv(alignments / f"{rec_id}.csv")
        assert list(frame.columns) == ["onset", "offset", "onset_frame", "offset_frame", "confidence"]
        assert frame.confidence.between(0, 1).all() and len(frame) == len(PIECE)
    scores = json.loads((metrics / "align.json").read_text())
    assert set(scores["confidence"]) == {"good", "mixed_up"}
    assert scores["confidence"]["good"] >= MIN_CONFIDENCE > scores["confidence"]["mixed_up"]
    assert scores["low_confidence"] == ["mixed_up"]
    assert json.loads((alignments / "confidence.json").read_text()) == scores["confidence"]

    features = corpus / "features"
    with pytest.warns(UserWarning, match=r"align\.min_confidence.*mixed_up"):
        mel_stage.run(PARAMS, raw, audio16k, alignments, features, metrics / "mel.json", corpus / "mel.png")
    assert "warning: 1 recording(s) left out" in capsys.readouterr().out
    assert list(pd.read_csv(features / "index.csv").id) == ["good"]
    assert not (features / "mixed_up.npz").exists()
    assert json.loads((metrics / "mel.json").read_text())["left_out"] == ["mixed_up"]
    left_out = read_left_out(features)
    assert list(left_out.id) == ["mixed_up"] and LOW_CONFIDENCE in left_out.reason[0]

    # the report lists it
    from pipeline.evaluation.report import write_report

    table = pd.DataFrame({"mel_l1": [0.5]}, index=pd.Index(["deep performer"], name="system"))
    page = write_report(corpus / "report", table, [], title="t", mel=PARAMS.mel, left_out=left_out)
    html = page.read_text()
    assert "Left out: low alignment confidence" in html and "<code>mixed_up</code>" in html


def test_without_low_confidence_recordings_nothing_is_left_out_or_listed(corpus, tmp_path):
    from pipeline.datasets.featurize import featurize_corpus
    from pipeline.datasets.layout import read_manifest
    from pipeline.evaluation.report import write_report

    raw, audio16k = corpus / "raw", corpus / "audio16k"
    alignments = tmp_path / "alignments"
    alignments.mkdir()
    for rec_id in ("good", "mixed_up"):
        frame = pd.DataFrame({"onset": [0.0] * len(PIECE), "offset": [0.5] * len(PIECE)})
        frame["onset_frame"], frame["offset_frame"] = 0, 31
        frame.to_csv(alignments / f"{rec_id}.csv", index=False)
    (alignments / "confidence.json").write_text(json.dumps({"good": 0.9, "mixed_up": 0.5}))
    (alignments / "sources.json").write_text(json.dumps({"good": "dtw", "mixed_up": "dtw"}))
    stats = featurize_corpus(read_manifest(audio16k), raw, audio16k, alignments, PARAMS.mel, tmp_path / "f", 0.4)
    assert stats["recordings"] == 2 and stats["left_out"] == []
    assert read_left_out(tmp_path / "f").empty
    table = pd.DataFrame({"mel_l1": [0.5]}, index=pd.Index(["deep performer"], name="system"))
    html = write_report(tmp_path / "r", table, [], title="t", mel=PARAMS.mel, left_out=read_left_out(tmp_path / "f"))
    assert "Left out" not in html.read_text()
