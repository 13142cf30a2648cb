"""The pipeline's one split: by piece, deterministic, stratified, stable when recordings are added."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.datasets.split import split_corpus
from pipeline.errors import PipelineError
from tests._params import PARAMS


def split_config(**changes):
    """params.yaml's split with ``changes`` (its checks run again: dataclasses.replace calls __post_init__)."""
    return replace(PARAMS.split, **changes)


def corpus(rng: np.random.Generator, pieces: int, performers: int, coverage: float = 1.0) -> pd.DataFrame:
    """A random corpus: each piece played by a random subset of performers (at least one)."""
    rows = []
    for p in range(pieces):
        poly = bool(rng.random() < 0.4)
        players = [k for k in range(performers) if rng.random() < coverage] or [int(rng.integers(performers))]
        for k in players:
            rows.append({"id": f"piece{p}__perf{k}", "piece": f"piece{p}", "performer": f"perf{k}", "polyphonic": poly})
    return pd.DataFrame(rows)


def parts_of_pieces(index: pd.DataFrame, split) -> dict[str, set[str]]:
    piece = dict(zip(index["id"], index["piece"]))
    return {name: {piece[i] for i in split.part(name)} for name in ("train", "validation", "test")}


@pytest.mark.parametrize("trial", range(40))
def test_no_test_piece_is_ever_trained_on(trial):
    rng = np.random.default_rng(trial)
    index = corpus(
        rng, pieces=int(rng.integers(2, 30)), performers=int(rng.integers(1, 8)), coverage=float(rng.uniform(0.3, 1.0))
    )
    config = split_config(
        seed=int(rng.integers(100)), test_share=float(rng.uniform(0, 0.4)), validation_share=float(rng.uniform(0, 0.3))
    )
    split = split_corpus(index, config)
    pieces = parts_of_pieces(index, split)
    assert not pieces["test"] & pieces["train"] and not pieces["test"] & pieces["validation"]
    assert not pieces["validation"] & pieces["train"]
    every = split.train + split.validation + split.test + split.excluded
    assert sorted(every) == sorted(index["id"]) and len(set(every)) == len(every)  # a partition
    assert split.train  # something is always left to train on
    trained = set(index.set_index("id").loc[split.train, "performer"])
    held_out = set(index.set_index("id").loc[split.validation + split.test, "performer"])
    assert held_out <= trained  # every scored recording's performer is known to the models
    assert split_corpus(index, config) == split  # deterministic


def test_built_in_shape_tests_mono_and_poly_pieces_played_by_everyone():
    rows = [
        {"id": f"{p}__{k}", "piece": p, "performer": k, "polyphonic": p.startswith("chorale")}
        for p in [f"violin{i}" for i in range(7)] + [f"chorale{i}" for i in range(5)]
        for k in "abcd"
    ]
    index = pd.DataFrame(rows)
    split = split_corpus(index, split_config(test_share=0.25, validation_share=0.15, seed=2))
    test = index.set_index("id").loc[split.test]
    assert test[~test.polyphonic].piece.nunique() >= 2 and test[test.polyphonic].piece.nunique() >= 1
    assert all(set(group.performer) == set("abcd") for _, group in test.groupby("piece"))


def test_stable_when_recordings_are_added():
    rng = np.random.default_rng(7)
    index = corpus(rng, pieces=40, performers=4, coverage=0.7)
    config = split_config(seed=3)
    before = split_corpus(index, config)
    place = {i: p for p in ("train", "validation", "test") for i in before.part(p)}
    # more takes of existing pieces, by known performers: nothing moves, each take goes with its piece
    takes = index.sample(10, random_state=0).assign(id=lambda f: f["id"] + "_take2")
    after = split_corpus(pd.concat([index, takes], ignore_index=True), config)
    moved = {i: p for p in ("train", "validation", "test") for i in after.part(p)}
    assert all(moved[i] == place[i] for i in place)
    assert all(moved[t] == place[o] for t, o in zip(takes["id"], takes["id"].str.removesuffix("_take2")))
    # a new piece may shift at most the unit at each of the two boundaries
    new = pd.DataFrame([{"id": "new__perf1", "piece": "new", "performer": "perf1", "polyphonic": False}])
    after = split_corpus(pd.concat([index, new], ignore_index=True), config)
    moved = {i: p for p in ("train", "validation", "test") for i in after.part(p)}
    piece = dict(zip(index["id"], index["piece"]))
    assert len({piece[i] for i in place if moved[i] != place[i]}) <= 2


def test_by_recording_may_share_pieces_but_keeps_performers_trained():
    rng = np.random.default_rng(1)
    index = corpus(rng, pieces=6, performers=3)
    split = split_corpus(index, split_config(by="recording", test_share=0.3, validation_share=0.2, seed=0))
    assert split.test and not set(split.test) & set(split.train)
    assert set(index.set_index("id").loc[split.test, "performer"]) <= set(
        index.set_index("id").loc[split.train, "performer"]
    )


def test_a_different_seed_gives_a_different_split_and_bad_settings_are_refused():
    index = corpus(np.random.default_rng(0), pieces=30, performers=3)
    assert split_corpus(index, split_config(seed=0)).test != split_corpus(index, split_config(seed=1)).test
    with pytest.raises(PipelineError, match=r"split\.by"):
        split_config(by="performer")
    with pytest.raises(PipelineError, match="sum to less than 1"):
        split_config(test_share=0.6, validation_share=0.5)


def test_named_pieces_override_the_hash_and_only_unnamed_parts_are_hash_drawn():
    index = corpus(np.random.default_rng(3), pieces=20, performers=3)
    hashed = split_corpus(index, split_config(seed=0))
    trained = sorted(parts_of_pieces(index, hashed)["train"])
    named = split_corpus(index, split_config(seed=0, test_pieces=(trained[0],)))
    pieces = parts_of_pieces(index, named)
    assert pieces["test"] == {trained[0]}  # exactly the named piece: the hash draws no other test piece
    assert pieces["validation"] and trained[0] not in pieces["validation"] | pieces["train"]  # still hash-drawn
    both = split_corpus(index, split_config(seed=0, test_pieces=(trained[0],), validation_pieces=(trained[1],)))
    pieces = parts_of_pieces(index, both)
    assert pieces["test"] == {trained[0]} and pieces["validation"] == {trained[1]}
    assert len(pieces["train"]) == index.piece.nunique() - 2
    # by recording, a named piece still holds all its recordings
    by_recording = split_corpus(index, split_config(by="recording", seed=0, test_pieces=(trained[0],)))
    assert set(index[index.piece == trained[0]].id) <= set(by_recording.test + by_recording.excluded)


def test_an_unknown_named_piece_or_one_named_twice_is_an_error():
    index = corpus(np.random.default_rng(0), pieces=4, performers=2)
    with pytest.raises(PipelineError, match=r"split\.test_pieces: piece 'nope' is not in the corpus.*piece0, piece1"):
        split_corpus(index, split_config(test_pieces=("nope",)))
    with pytest.raises(PipelineError, match="both name piece1"):
        split_config(test_pieces=("piece1",), validation_pieces=("piece1",))


def test_excluded_depends_on_what_the_models_could_learn_of_a_performer():
    """A held-out recording with audio needs its performer in training *with audio* (synthesis renders
    them); an annotation-only one needs them in training at all (the alignment model learns timing)."""
    rows = [
        ("a_train", "train_piece", "a", True),  # a: audio in training
        ("a_test", "test_piece", "a", False),
        ("b_train", "train_piece", "b", False),  # b: only annotation-only in training
        ("b_test_audio", "test_piece", "b", True),
        ("b_test_notes", "test_piece", "b", False),
        ("c_test", "test_piece", "c", False),  # c: nothing in training
    ]
    index = pd.DataFrame(rows, columns=["id", "piece", "performer", "has_audio"])
    split = split_corpus(index, split_config(test_pieces=("test_piece",), validation_pieces=()))
    assert split.train == ["a_train", "b_train"]
    assert split.test == ["a_test", "b_test_notes"] and split.excluded == ["b_test_audio", "c_test"]
    assert split.annotation_only == ["a_test", "b_test_notes", "b_train", "c_test"]
    audio = split.with_audio()
    assert (audio.train, audio.validation, audio.test, audio.excluded) == (["a_train"], [], [], ["b_test_audio"])
