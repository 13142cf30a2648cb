"""The real Bach Violin development copy (../shared/data/bach-violin) through the data stages and into
the training stages' data: annotation-only recordings are kept, counted per violinist, aligned by their
reference, featurised without a mel, and reach the alignment model but never synthesis; no recording
of a test piece reaches any training stage.

The corpus is every recording of five movements (19 recordings, 6 violinists); one of them has audio
(oliver-colbentson BWV 1006/6, 95 s), so the whole chain runs in seconds.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.datasets.clips import ClipDataset
from pipeline.datasets.layout import read_manifest
from pipeline.datasets.split import read_split
from pipeline.errors import PipelineError
from pipeline.features import NOTE_FEATURE_KEYS, load_features
from stages import align, mel, prepare, resample
from stages._training import clip_datasets, training_recordings
from tests._params import PARAMS

REAL = Path(__file__).resolve().parents[2] / "shared/data/bach-violin"
PIECES = ["bwv1001_mov1", "bwv1006_mov1", "bwv1006_mov2", "bwv1006_mov3", "bwv1006_mov6"]
WITH_AUDIO = "oliver-colbentson_bwv1006_mov6"

pytestmark = pytest.mark.skipif(not (REAL / "info.csv").is_file(), reason="no Bach Violin copy at ../shared/data")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The five movements' recordings, through prepare, resample, align and mel."""
    base = tmp_path_factory.mktemp("bach-real")
    root = base / "bach-violin"  # the real folders, an info.csv of the chosen movements
    root.mkdir()
    for sub in ("notes", "alignments", "tempos", "scores", "audio"):
        (root / sub).symlink_to(REAL / sub)
    info = pd.read_csv(REAL / "info.csv", dtype=str)
    info = info[info["score_filename"].isin(PIECES)]
    info.to_csv(root / "info.csv", index=False)
    params = replace(PARAMS, data=replace(PARAMS.data, source="bach-violin", root=str(root)))
    out = {name: base / name for name in ("raw", "audio16k", "alignments", "features", "metrics")}
    prepare.run(params, out["raw"])
    resample.run(params, out["raw"], out["audio16k"])
    metrics = out["metrics"]
    align.run(params, out["raw"], out["audio16k"], out["alignments"], metrics / "align.json", metrics / "cdf.csv")
    mel.run(
        params, *(out[k] for k in ("raw", "audio16k", "alignments", "features")), metrics / "mel.json", base / "m.png"
    )
    return {"info": info, **out}


def test_every_recording_is_kept_and_counted_per_violinist(corpus):
    info, raw = corpus["info"], corpus["raw"]
    recordings = read_manifest(raw)
    assert sorted(r.id for r in recordings) == sorted(info["filename"])  # 19: none skipped for lack of audio
    assert [r.id for r in recordings if r.has_audio] == [WITH_AUDIO]
    counts = json.loads((raw / "corpus.json").read_text())
    assert (counts["recordings"], counts["with_audio"], counts["annotation_only"]) == (19, 1, 18)
    per_violinist = info.groupby("violinist").size().to_dict()
    assert {name: c["with_audio"] + c["annotation_only"] for name, c in counts["performers"].items()} == per_violinist
    assert counts["performers"]["oliver-colbentson"] == {"with_audio": 1, "annotation_only": 2}
    assert counts["performers"]["shunske-sato"] == {"with_audio": 0, "annotation_only": 5}
    # the resample stage keeps them (audio "") for the later stages; it resampled the one with audio only
    resampled = read_manifest(corpus["audio16k"])
    assert [r.id for r in resampled] == [r.id for r in recordings]
    assert sorted(p.name for p in (corpus["audio16k"] / "audio").iterdir()) == [f"{WITH_AUDIO}.wav"]


def test_annotation_only_alignment_is_the_reference_and_only_dtw_is_scored(corpus):
    alignments, raw = corpus["alignments"], corpus["raw"]
    sources = json.loads((alignments / "sources.json").read_text())
    assert sources.pop(WITH_AUDIO) == "dtw" and set(sources.values()) == {"reference"} and len(sources) == 18
    assert list(json.loads((alignments / "confidence.json").read_text())) == [WITH_AUDIO]
    rec = "shunske-sato_bwv1006_mov2"
    frame = pd.read_csv(alignments / f"{rec}.csv")
    reference = pd.read_csv(raw / "reference" / f"{rec}.csv")
    assert list(frame.columns) == ["onset", "offset", "onset_frame", "offset_frame", "confidence"]
    assert np.allclose(frame.onset, reference.onset) and frame.confidence.isna().all()
    hop = PARAMS.mel.hop_length / PARAMS.mel.sample_rate
    assert (frame.onset_frame == np.floor(frame.onset / hop + 1e-9)).all()
    metrics = json.loads((corpus["metrics"] / "align.json").read_text())
    assert (metrics["recordings"], metrics["dtw_aligned"], metrics["reference_timing"]) == (19, 1, 18)
    assert metrics["polyphonic"]["notes"] == len(pd.read_csv(alignments / f"{WITH_AUDIO}.csv"))  # DTW notes only


def test_annotation_only_features_have_every_note_key_and_no_mel(corpus):
    features = corpus["features"]
    index = pd.read_csv(features / "index.csv", dtype={"id": str}).set_index("id")
    assert index.has_audio.sum() == 1 and bool(index.loc[WITH_AUDIO, "has_audio"])
    rec = "emil-telmanyi_bwv1006_mov1"
    data = load_features(features / f"{rec}.npz")
    assert set(data) == set(NOTE_FEATURE_KEYS) and "mel" not in data
    assert index.loc[rec, "frames"] == data["offset_frame"].max() > 1000  # the frames its timing spans
    with_mel = load_features(features / f"{WITH_AUDIO}.npz")
    assert with_mel["mel"].shape == (PARAMS.mel.n_mels, index.loc[WITH_AUDIO, "frames"])
    stats = json.loads((corpus["metrics"] / "mel.json").read_text())
    assert stats["frames"] == index.loc[WITH_AUDIO, "frames"]  # the mel statistics: audio only
    assert (stats["with_audio"], stats["annotation_only"]) == (1, 18)
    # a dataset that needs the mel refuses them; one without reads their notes
    frames = dict(clip_frames=PARAMS.mel.clip_frames, hop_length=PARAMS.mel.hop_length)
    with pytest.raises(PipelineError, match=r"annotation-only recording.*have no audio"):
        ClipDataset(features, [rec], **frames)
    clip = ClipDataset(features, [rec], notes="starting", mel=False, **frames)[0]
    assert "mel" not in clip and len(clip["pitch"]) > 0 and clip["target_onset"].min() == 0


def clip_recordings(data) -> set[str]:
    return {ref.recording for part in (data.train, data.validation) for ref in part.refs}


@pytest.mark.parametrize(
    "named",
    [
        {},  # params.yaml's split: the hash alone
        {"test_pieces": ("bwv1006_mov2", "bwv1006_mov3"), "validation_pieces": ("bwv1001_mov1",)},
    ],
)
def test_no_test_piece_reaches_a_training_stage_and_only_alignment_gets_annotation_only(corpus, named):
    features, performers = corpus["features"], corpus["audio16k"] / "performers.json"
    split_config = replace(PARAMS.split, **named)
    split = read_split(features, split_config)
    piece = dict(zip(corpus["info"]["filename"], corpus["info"]["score_filename"]))
    test_pieces = {piece[r] for r in split.test}
    assert test_pieces and split.test
    if named:
        assert test_pieces == set(named["test_pieces"])
    held_out = set(split.test) | set(split.excluded)
    # the alignment stage: every train / validation recording, annotation-only ones as clips without a mel
    alignment = clip_datasets(features, performers, split_config, PARAMS.mel, notes="starting", needs_audio=False)
    seen = clip_recordings(alignment)
    assert seen == set(split.train + split.validation) and not seen & held_out
    assert not {piece[r] for r in seen} & test_pieces
    assert seen - {WITH_AUDIO} and "mel" not in alignment.train[0]
    # a synthesis stage: only recordings with audio, never a test piece's
    if WITH_AUDIO in split.train:
        synthesis = clip_datasets(features, performers, split_config, PARAMS.mel)
        assert clip_recordings(synthesis) == {WITH_AUDIO} and synthesis.train[0]["mel"].shape[0] == PARAMS.mel.n_mels
        assert synthesis.performers == alignment.performers  # one performer table for all
    else:
        with pytest.raises(PipelineError, match="no training recordings with audio"):
            training_recordings(features, split_config)


def test_named_pieces_override_the_hash_on_the_real_index(corpus):
    features = corpus["features"]
    hashed = read_split(features, PARAMS.split)
    piece = dict(zip(corpus["info"]["filename"], corpus["info"]["score_filename"]))
    trained_piece = sorted({piece[r] for r in hashed.train})[0]
    named = read_split(features, replace(PARAMS.split, test_pieces=(trained_piece,)))
    assert {piece[r] for r in named.test} == {trained_piece}  # exactly the named piece, nothing hash-drawn
    with pytest.raises(PipelineError, match=r"split\.validation_pieces: piece 'bwv9999_mov1'.*bwv1006_mov6"):
        read_split(features, replace(PARAMS.split, validation_pieces=("bwv9999_mov1",)))


def test_a_piece_is_the_movement_whatever_repeats_its_score_plays(tmp_path):
    """info.csv names BWV 1002/7's score bwv1002_mov7, bwv1002_mov7_00 or bwv1002_mov7_10 by the repeats
    played: one movement, one piece, so naming it holds out all three recordings."""
    from pipeline.datasets.split import split_corpus

    root = tmp_path / "bach-violin"
    root.mkdir()
    for sub in ("notes", "alignments", "tempos", "scores", "audio"):
        (root / sub).symlink_to(REAL / sub)
    info = pd.read_csv(REAL / "info.csv", dtype=str)
    variants = info[info["score_filename"].str.startswith("bwv1002_mov7")]
    assert sorted(variants["score_filename"]) == ["bwv1002_mov7", "bwv1002_mov7_00", "bwv1002_mov7_10"]
    pd.concat([variants, info[info["filename"] == WITH_AUDIO]]).to_csv(root / "info.csv", index=False)
    params = replace(PARAMS, data=replace(PARAMS.data, source="bach-violin", root=str(root)))
    prepare.run(params, tmp_path / "raw")
    recordings = read_manifest(tmp_path / "raw")
    pieces = {r.id: r.piece for r in recordings}
    assert {pieces[f] for f in variants["filename"]} == {"bwv1002_mov7"}
    index = pd.DataFrame(
        [{"id": r.id, "piece": r.piece, "performer": r.performer, "has_audio": r.has_audio} for r in recordings]
    )
    split = split_corpus(index, replace(PARAMS.split, test_pieces=("bwv1002_mov7",)))
    assert set(split.test) | set(split.excluded) == set(variants["filename"])
    assert split.train == [WITH_AUDIO]


def test_the_timing_rows_score_every_test_recording_and_the_audio_rows_those_with_audio(corpus):
    from pipeline.evaluation.run import read_clips

    piece = dict(zip(corpus["info"]["filename"], corpus["info"]["score_filename"]))
    split_config = replace(PARAMS.split, test_pieces=("bwv1006_mov2", "bwv1006_mov3"))
    every = read_split(corpus["features"], split_config)  # what read_clips gives the timing rows
    assert every.test and set(every.test) <= set(every.annotation_only)
    assert {piece[r] for r in every.test} == {"bwv1006_mov2", "bwv1006_mov3"}
    assert every.with_audio().test == []  # nothing with sound: the audio rows have no clip
    params = replace(PARAMS, split=split_config)
    with pytest.raises(PipelineError, match="no test recording with audio"):
        read_clips(params, corpus["features"], corpus["audio16k"])
    # the timing clips of annotation-only recordings are cut from their notes, without a mel
    starting = ClipDataset(
        corpus["features"],
        every.test,
        notes="starting",
        mel=False,
        clip_frames=PARAMS.mel.clip_frames,
        hop_length=PARAMS.mel.hop_length,
    )
    assert len(starting) > 10 and {r.recording for r in starting.refs} == set(every.test)
    assert "mel" not in starting[0] and starting[0]["onset_frame"].size > 0
