import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import Params, load_params
from pipeline.errors import PipelineError

REPO = Path(__file__).resolve().parents[1]


def _params_with(tmp_path, change) -> Path:
    """The repository's params.yaml with ``change(raw_dict)`` applied, written to ``tmp_path``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    change(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_repository_params_load_into_typed_objects(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert isinstance(params, Params)
    assert params.mel.hop_length == 256 and params.mel.n_mels == 80 and params.resample.sample_rate == 16000
    assert params.data.source == "builtin" and isinstance(params.data.builtin.performers, tuple)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["align"].update(feature_rat=100), "unknown setting.*align.feature_rat"),
        (lambda p: p["mel"].update(n_mels="eighty"), "mel.n_mels must be int"),
        (
            lambda p: p["data"].update(source="youtube"),
            "data.source must be one of builtin, bach-violin, maestro, folder",
        ),
        # no competing defaults in the code: a setting missing from the file is an error, not a fallback
        (lambda p: p["mel"].pop("hop_length"), r"missing setting\(s\) params.mel.hop_length"),
        (lambda p: p["train_synthesis"]["train"].pop("max_steps"), "missing setting.*train_synthesis.train.max_steps"),
        (lambda p: p.pop("evaluate"), r"missing setting\(s\) params.evaluate$"),
        # the shared training-loop group: each key lives in one place
        (lambda p: p["train_alignment"]["train"].update(seed=1), "train_alignment.train.seed also set in params.train"),
        (lambda p: p["train"].update(max_step=3), "unknown setting.*params.train.max_step"),
    ],
)
def test_bad_params_name_the_file_and_the_setting(tmp_path, change, message):
    path = _params_with(tmp_path, change)
    with pytest.raises(PipelineError, match=message) as info:
        load_params(path)
    assert str(info.value).startswith(str(path))


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [1, 2\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(path)


def test_the_shared_train_group_completes_every_training_stage(tmp_path):
    params = load_params(_params_with(tmp_path, lambda p: p["train"].update(seed=7, log_every=3)))
    stages = [
        params.train_alignment,
        params.train_synthesis,
        params.train_hifigan,
        params.train_hifigan_v2,
        params.train_hifigan_baseline,
        params.train_performancenet,
    ]
    assert {(s.train.seed, s.train.log_every) for s in stages} == {(7, 3)}
    assert [s.train.max_steps for s in stages[:2]] == [400, 1500]  # the stages' own keys stay theirs


@pytest.mark.parametrize("name", ["paper-violin.yaml", "paper-piano.yaml"])
def test_paper_files_hold_the_same_settings_as_params_yaml(name):
    """Every key of params.yaml is in each paper file and the reverse (nothing falls back to a default)."""

    def keys(tree, prefix=""):
        if not isinstance(tree, dict) or prefix.endswith((".model", ".generator", ".ablations")):
            return {prefix}
        return set().union(*(keys(v, f"{prefix}.{k}") for k, v in tree.items()))

    ours = keys(yaml.safe_load((REPO / "params.yaml").read_text()))
    theirs = keys(yaml.safe_load((REPO / "params" / name).read_text()))
    assert ours == theirs, ours ^ theirs


# an audio constant spelled outside pipeline/config.py (and params*.yaml): a sample rate, a hop or a clip
# length. The transcriber's rate and hop are those of the shipped basic-pitch model, not a setting.
AUDIO_CONSTANT = re.compile(
    r"(?<![\w.])(16000|16_000|22050|32000|44100|48000|312)(?![\w.])"
    r"|(?i:\b\w*(hop_length|hop|sample_rate|sr|clip_frames|frame_rate)\s*[:=]\s*\d{3})"
)
ALLOWED = {
    ("pipeline/evaluation/transcription.py", "22050"),
    ("pipeline/evaluation/transcription.py", "MODEL_HOP = 256"),
    ("benchmarks/align_benchmark.py", "BASELINE_HOP = 512"),
}  # the compared CQT method's own hop


def test_no_audio_constant_is_spelled_outside_the_config_module():
    found = []
    for folder in ("pipeline", "stages", "benchmarks"):  # tests make audio at many rates on purpose
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "pipeline/config.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if AUDIO_CONSTANT.search(code) and not any(rel == f and a in line for f, a in ALLOWED):
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", ["paper-violin", "paper-piano"])
def test_paper_parameter_files_load_with_the_papers_step_counts(repo_root, name):
    params = load_params(repo_root / "params" / f"{name}.yaml")
    assert params.train_alignment.train.max_steps == 10_000
    assert params.train_synthesis.train.max_steps == (100_000 if name == "paper-violin" else 250_000)
    # the paper's HiFi-GAN V2 (the paper row) and the project's vocoder at GPU scale beside it
    assert params.train_hifigan_v2.vocoder == "hifigan" and params.train_hifigan_v2.generator == {}
    assert params.train_hifigan_v2.train.max_steps == 1_000_000 and params.train_hifigan_v2.discriminator_start == 0
    assert params.train_hifigan.vocoder == "source_filter"
    assert params.train_synthesis.model["decoder_layers"] == 6 and params.train_synthesis.optimizer.warmup == 4000
    assert params.data.source == ("bach-violin" if name == "paper-violin" else "maestro")
    assert set(params.train_synthesis.ablations) == {"no_notewise_pe", "no_performer_embedding", "no_encoder"}
    assert params.train_performancenet.model["channels"] == [256, 512, 1024, 2048, 4096]
    assert params.train_performancenet.segment_frames == 0  # whole 5-second clips, as the paper
    assert params.train_hifigan_baseline.train.max_steps == params.train_hifigan_v2.train.max_steps


def test_the_mel_group_alone_loads_for_consumers_of_trained_models(tmp_path):
    from pipeline.config import load_mel

    mel = yaml.safe_load((REPO / "params.yaml").read_text())["mel"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"mel": mel, "something": "else"}))  # other groups are not its business
    assert load_mel(path) == load_params(REPO / "params.yaml").mel
    path.write_text(yaml.safe_dump({"mel": {**mel, "hop": 256}}))
    with pytest.raises(PipelineError, match=r"unknown setting.*params\.mel\.hop"):
        load_mel(path)
    path.write_text(yaml.safe_dump({"lr": 1}))
    with pytest.raises(PipelineError, match=r"missing setting\(s\) params.mel"):
        load_mel(path)


@pytest.mark.parametrize(
    ("group", "key", "value", "message"),
    [
        ("resample", "sample_rate", 0, "params.resample.sample_rate must be >= 1, not 0"),
        ("align", "band_seconds", float("nan"), "params.align.band_seconds must be a finite number, not nan"),
        ("align", "band_seconds", float("inf"), "params.align.band_seconds must be a finite number, not inf"),
        ("align", "program", 128, "params.align.program must be in [0, 127], not 128"),
        ("mel", "n_mels", -80, "params.mel.n_mels must be >= 1, not -80"),
        ("mel", "fmax", 9000.0, "params.mel needs fmin < fmax <= sample_rate / 2"),
        ("mel", "win_length", 2048, "params.mel.win_length (2048) must be <= mel.n_fft (1024)"),
        ("split", "test_share", 1.0, "params.split.test_share must be in [0, 1), not 1"),
        ("evaluate", "confidence", 1.0, "params.evaluate.confidence must be in (0, 1), not 1"),
        ("evaluate", "bootstrap_resamples", 0, "params.evaluate.bootstrap_resamples must be >= 1, not 0"),
        ("train_hifigan", "lr_decay", 0.0, "params.train_hifigan.lr_decay must be in (0, 1], not 0"),
        ("train_hifigan", "mel_weight", -1.0, "params.train_hifigan.mel_weight must be >= 0, not -1"),
        ("train_hifigan", "betas", [0.8, 1.5], "params.train_hifigan.betas must be in [0, 1), not 1.5"),
        ("train_synthesis.optimizer", "lr", 0.0, "params.train_synthesis.optimizer.lr must be > 0, not 0"),
        ("train_alignment.train", "max_steps", -5, "params.train_alignment.train.max_steps must be >= 1, not -5"),
        ("train_alignment.train", "batch_size", 0, "params.train_alignment.train.batch_size must be >= 1, not 0"),
        ("train", "log_every", 0, "params.train_alignment.train.log_every must be >= 1, not 0"),
        ("data", "seed", -1, "params.data.seed must be >= 0, not -1"),
        ("data.builtin", "max_seconds", 0.0, "params.data.builtin.max_seconds must be > 0, not 0"),
    ],
)
def test_a_value_out_of_its_range_is_one_error_naming_the_key(tmp_path, group, key, value, message):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    block = raw
    for part in group.split("."):
        block = block[part]
    block[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PipelineError) as err:
        load_params(path)
    assert message in str(err.value) and str(err.value).startswith(str(path))


def test_the_paper_parameter_files_are_in_range():
    for name in ("params.yaml", "params/paper-violin.yaml", "params/paper-piano.yaml"):
        load_params(REPO / name)
