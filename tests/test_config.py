import pytest

from pipeline.config import Params, load_params
from pipeline.errors import PipelineError


def test_repository_params_load_into_typed_objects(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert isinstance(params, Params)
    assert params.mel.hop_length == 256 and params.mel.n_mels == 80 and params.resample.sample_rate == 16000
    assert params.data.source == "builtin" and isinstance(params.data.builtin.performers, tuple)


@pytest.mark.parametrize(
    "text, message",
    [
        ("align:\n  feature_rat: 100\n", "unknown setting.*align.feature_rat"),
        ("mel:\n  n_mels: eighty\n", "mel.n_mels must be int"),
        ("data:\n  source: youtube\n", "data.source must be builtin, bach-violin or maestro"),
        ("data: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_params_name_the_file_and_the_setting(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=message) as info:
        load_params(path)
    assert str(info.value).startswith(str(path))


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
