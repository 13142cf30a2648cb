"""The `performer` command: help everywhere, one-line errors, no partial outputs, a real round trip."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.test_scores import write_midi

COMMANDS = ["stage", "performers", "perform", "align", "mel", "render"]


def performer(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = performer(*([command] if command else []), "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.slow
def test_bad_inputs_fail_cleanly_without_outputs(tmp_path):
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01")
    empty = tmp_path / "empty.mid"
    write_midi(empty, [])
    fake_audio = tmp_path / "fake.wav"
    fake_audio.write_text("RIFF? no.")
    good = tmp_path / "good.mid"
    write_midi(good, [(i, 1, 60 + i, 90) for i in range(4)])
    out = tmp_path / "out.csv"

    assert_one_line_error(performer("align", corrupt, fake_audio, "-o", out), "corrupt.mid")
    assert_one_line_error(performer("align", good, fake_audio, "-o", out), "fake.wav", "not a readable audio file")
    assert_one_line_error(performer("perform", empty, "-o", tmp_path / "x.wav"), "empty.mid", "no notes")
    assert_one_line_error(
        performer("perform", good, "-o", tmp_path / "x.wav", "--performer", "zed"), "unknown performer"
    )
    assert_one_line_error(performer("mel", fake_audio, "-o", tmp_path / "m.npy"), "fake.wav")
    assert_one_line_error(performer("stage", "train"), "unknown stage")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mid", "empty.mid", "fake.wav", "good.mid"]


@pytest.mark.slow
def test_perform_then_align_round_trip(tmp_path):
    score = tmp_path / "scale.mid"
    write_midi(score, [(i * 0.5, 0.5, [62, 64, 66, 67, 69, 71, 73, 74][i % 8], 90) for i in range(24)], tempo_bpm=100)
    wav, truth, aligned = tmp_path / "played.wav", tmp_path / "truth.csv", tmp_path / "aligned.csv"
    result = performer("perform", score, "-o", wav, "--performer", "chiara", "--truth", truth)
    assert result.returncode == 0, result.stderr
    result = performer("align", score, wav, "-o", aligned)
    assert result.returncode == 0, result.stderr
    errors = np.abs(pd.read_csv(aligned)["onset"].to_numpy() - pd.read_csv(truth)["onset"].to_numpy())
    assert np.median(errors) < 0.03
    mel = tmp_path / "mel.npy"
    assert performer("mel", wav, "-o", mel, "--plot", tmp_path / "mel.png").returncode == 0
    spec = np.load(mel)
    import soundfile as sf

    assert spec.shape == (80, sf.info(wav).frames // 256)
    assert (tmp_path / "mel.png").stat().st_size > 10_000


def test_prepare_stage_with_a_missing_file_named_in_info_csv(tmp_path, repo_root):
    """The stage script itself: one line naming the file, exit 1, and no data/raw left behind."""
    import os

    import yaml

    from tests.test_bach_violin import make_tree

    tree = make_tree(tmp_path / "dataset")
    victim = tree / "bach-violin/notes/emil-telmanyi/emil-telmanyi_bwv1006_mov6.csv"
    victim.unlink()
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["data"].update(source="bach-violin", root=str(tree))
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    result = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--out", "data/raw"], cwd=work, capture_output=True, text=True, env=env
    )
    assert_one_line_error(result, str(victim))
    leftovers = list((work / "data").rglob("*")) if (work / "data").exists() else []
    assert leftovers == []  # not even a temporary folder
