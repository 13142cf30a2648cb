"""`performer render a.mid b.mid --out-dir FOLDER`: several scores in one process, the models loaded once,
each file the bytes the score renders to alone; the batch's faults are one line before any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import pipeline.render_job as render_job
from pipeline.cli import app
from tests.test_cli import assert_one_line_error
from tests.test_inference import performer_cli
from tests.test_onnx_render import make_models, write_and_export
from tests.test_scores import write_midi

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A models folder with a current ONNX export and three scores of different lengths and pitches."""
    folder = tmp_path_factory.mktemp("batch")
    write_and_export(folder / "models", make_models())
    for name, n, low in (("a", 24, 60), ("b", 12, 55), ("c", 30, 64)):
        write_midi(folder / f"{name}.mid", [(i * 0.5, 0.5, low + (i % 7), 80) for i in range(n)], tempo_bpm=100)
    return folder


def invoke(*args):
    return CliRunner().invoke(app, ["render", *map(str, args)], catch_exceptions=False)


def test_a_batch_loads_the_models_once_and_writes_what_each_score_renders_alone(workdir, monkeypatch):
    models = workdir / "models"
    alone = {}
    for name in ("a", "b", "c"):
        result = invoke(workdir / f"{name}.mid", "-o", workdir / f"{name}-alone.wav", "--models", models)
        assert result.exit_code == 0, result.output
        alone[name] = (workdir / f"{name}-alone.wav").read_bytes()
    assert len(set(alone.values())) == 3  # three different renders: the comparison below means something

    loads = []
    real_load = render_job.load_bundle
    monkeypatch.setattr(render_job, "load_bundle", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    out = workdir / "renders"  # created by the first write
    scores = [workdir / f"{name}.mid" for name in ("a", "b", "c")]
    result = invoke(*scores, "--out-dir", out, "--models", models, "--performer", "ana")
    assert result.exit_code == 0, result.output
    assert len(loads) == 1 and loads[0][4] == models / "onnx"  # once, on the export
    lines = result.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"wrote {out / name}.wav" for name in ("a", "b", "c")]
    assert [line.split(" (")[1].split(",")[0] for line in lines] == ["24 notes", "12 notes", "30 notes"]
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav"]
    for name in ("a", "b", "c"):
        assert (out / f"{name}.wav").read_bytes() == alone[name], name  # "ana" is the models' first performer


@pytest.mark.slow
def test_a_batchs_faults_are_one_line_and_come_before_any_file(workdir):
    a, b, models = workdir / "a.mid", workdir / "b.mid", workdir / "models"
    out = workdir / "faults"
    assert_one_line_error(performer_cli("render", a, b, "-o", workdir / "x.wav"), "-o names one audio file")
    assert_one_line_error(performer_cli("render", a, "-o", workdir / "x.wav", "--out-dir", out), "not both")
    assert_one_line_error(performer_cli("render", a), "give -o FILE (one score) or --out-dir FOLDER")
    other = workdir / "other"
    other.mkdir(exist_ok=True)
    write_midi(other / "a.mid", [(0, 1, 60, 80)])
    assert_one_line_error(performer_cli("render", a, other / "a.mid", "--out-dir", out), "would both be written")
    assert_one_line_error(
        performer_cli("render", a, b, "--out-dir", out, "--timing", workdir / "t.csv"), "--timing names one file"
    )
    assert_one_line_error(performer_cli("render", a, b, "--out-dir", a), "--out-dir is a file")
    corrupt = workdir / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    # every score is read before the models load and before the first file: a bad last score leaves nothing
    assert_one_line_error(
        performer_cli("render", a, b, corrupt, "--out-dir", out, "--models", models), "corrupt.mid", "not a readable"
    )
    assert not out.exists() and not (workdir / "x.wav").exists()
