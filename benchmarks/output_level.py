"""How loud is what users hear? Level, DC and peaks of the vocoder's and Deep Performer's audio.

Two checks (issue 12's level target: within 1 dB of the recording, |DC| < 1e-3, no clipping):

* **test clips** (the evaluate stage's split and clips): per clip, the RMS of the system's audio over the
  recording's, in dB, for the vocoder reconstructing the recording's mel (``Vocoder reconstruction``),
  for Deep Performer end to end (synthesis model on the recording's note timing, its mel shifted by the
  level offset its training stage measured, then the vocoder: as evaluate scores it and `performer
  render` plays it), at the model's own level, and with each clip's mel set to the performer's stored
  level (what `performer render --loudness performer` does to a whole piece; here per 5-second clip, so
  the clips' own loud and soft passages count against it); prints mean, median, share of clips within
  1 dB, the worst clip, max |DC| and the highest peak;
* **`performer render`** of ``--seconds`` of built-in violin material (the MIDI file of
  ``benchmarks/render_command.py``), the real command, once per performer and ``--loudness`` mode: RMS,
  DC and peak of the file, beside the RMS of that performer's training recordings (all their samples
  pooled: the level `--loudness performer` aims at), the median RMS of all their recordings in
  ``data/audio16k``, and that of their solo violin ones (the benchmark score is violin music; a
  rendered score has no recording of its own).

    PYTHONPATH=. python benchmarks/output_level.py [--models models] [--seconds 60]

The figures in docs/benchmarks.md ("Output level") come from here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def level_db(audio: np.ndarray, reference: np.ndarray) -> float:
    rms = np.sqrt(np.mean(np.square(audio, dtype=np.float64)))
    ref = np.sqrt(np.mean(np.square(reference, dtype=np.float64)))
    return float(20 * np.log10(max(rms, 1e-9) / max(ref, 1e-9)))


def summary(name: str, rows: list[tuple[float, float, float]]) -> str:
    db = np.array([r[0] for r in rows])
    return (
        f"{name}: {len(db)} clips, level mean {db.mean():+.2f} dB, median {np.median(db):+.2f} dB, "
        f"{np.mean(np.abs(db) <= 1.0):.0%} within 1 dB, worst {db[np.argmax(np.abs(db))]:+.2f} dB; "
        f"max |DC| {max(r[1] for r in rows):.1e}; peak {max(r[2] for r in rows):.2f}"
    )


def test_clips(models: Path) -> None:
    import torch

    from pipeline.config import load_params
    from pipeline.datasets.clips import ClipDataset, collate_clips
    from pipeline.datasets.split import read_split
    from pipeline.evaluation import systems as sys_

    torch.set_num_threads(1)
    params = load_params(ROOT / "params.yaml")
    features, audio = ROOT / "data/features", ROOT / "data/audio16k"
    clips = ClipDataset(
        features,
        read_split(features, params.split).test,
        audio_dir=audio,
        clip_frames=params.mel.clip_frames,
        hop_length=params.mel.hop_length,
    )
    vocoder = sys_.load_vocoder(models)
    rate = params.mel.sample_rate
    systems = {
        "Vocoder reconstruction": sys_.vocoder_reconstruction(vocoder, rate),
        "Deep Performer (calibrated, as evaluated and rendered)": sys_.synthesis_system(
            models, "synthesis", vocoder, "Deep Performer", rate
        ),
        "Deep Performer at the model's own level": at_level(models, vocoder, rate, "model"),
        "Deep Performer at the performer's level": at_level(models, vocoder, rate, "performer"),
    }
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in systems}
    for start in range(0, len(clips), 8):
        batch = collate_clips([clips[j] for j in range(start, min(len(clips), start + 8))])
        for name, system in systems.items():
            for j, out in enumerate(system(batch)):
                reference = batch["audio"][j, : len(out.audio)].numpy()
                rows[name].append(
                    (level_db(out.audio, reference), abs(float(np.mean(out.audio))), float(np.abs(out.audio).max()))
                )
    for name, values in rows.items():
        print(summary(name, values))


def at_level(models: Path, vocoder, rate: int, loudness: str):
    """Deep Performer with each clip's mel at the model's own level (``model``) or set to its performer's
    stored level (``performer``), then the vocoder."""
    import torch

    from pipeline.evaluation.systems import ClipOutput, clip_source
    from pipeline.inference.runtime.render import vocode
    from pipeline.loudness import set_mel_level
    from pipeline.models.persistence import load_model
    from pipeline.models.synthesis import SynthesisModel, synthesis_inputs

    model = load_model(models / "synthesis" / "model.pt", SynthesisModel)
    levels = model.calibration.performer_levels_db

    @torch.inference_mode()
    def run(batch):
        mel = model(**synthesis_inputs(model, batch)).float().numpy()
        outputs = []
        for i, n in enumerate(batch["frame_mask"].sum(1).tolist()):
            clip = mel[i, :, :n]
            if loudness == "performer":
                clip = set_mel_level(clip, levels[int(batch["performer"][i])])
            outputs.append(ClipOutput(vocode(vocoder, clip, source=clip_source(vocoder, batch, i, n, rate)), clip))
        return outputs

    return run


def rendered(models: Path, seconds: float) -> None:
    from benchmarks.render_command import write_score
    from pipeline.config import load_params
    from pipeline.datasets.layout import read_manifest
    from pipeline.datasets.split import read_split

    manifest = read_manifest(ROOT / "data/audio16k")
    train = set(read_split(ROOT / "data/features", load_params(ROOT / "params.yaml").split).train)
    index = pd.read_csv(ROOT / "data/features/index.csv", dtype={"id": str})
    polyphonic = dict(zip(index["id"], index["polyphonic"].astype(bool)))
    by_performer = pd.DataFrame(
        {
            "performer": [r.performer for r in manifest],
            "path": [ROOT / "data/audio16k" / r.audio for r in manifest],
            "train": [r.id in train for r in manifest],
            "solo": [not polyphonic.get(r.id, True) for r in manifest],
        }
    )
    performer_bin = Path(sys.executable).with_name("performer")
    with tempfile.TemporaryDirectory() as tmp:
        score = Path(tmp) / "score.mid"
        write_score(score, seconds)
        for performer, group in by_performer.groupby("performer"):
            signals = {p: sf.read(p, dtype="float64")[0] for p in group["path"]}
            rms_of = {p: float(np.sqrt(np.mean(np.square(x)))) for p, x in signals.items()}
            median = float(np.median(list(rms_of.values())))
            solo = float(np.median([rms_of[p] for p in group[group["solo"]]["path"]]))  # the score is violin music
            trained = [signals[p] for p in group[group["train"]]["path"]]
            pooled = np.sqrt(sum(np.square(x).sum() for x in trained) / max(1, sum(len(x) for x in trained)))
            for loudness in ("calibrated", "performer", "model"):
                out = Path(tmp) / f"{performer}-{loudness}.wav"
                command = [str(performer_bin), "render", str(score), "-o", str(out), "--models", str(models)]
                command += ["--performer", str(performer), "--loudness", loudness]
                subprocess.run(command, check=True, capture_output=True)
                audio, rate = sf.read(out, dtype="float32")
                rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
                vs_train = f"{20 * np.log10(rms / pooled):+.1f} dB" if trained else "n/a"
                print(
                    f"render {performer} --loudness {loudness}: {len(audio) / rate:.1f} s, RMS {rms:.4f}, "
                    f"{vs_train} vs its {len(trained)} training recordings pooled ({pooled:.4f}), "
                    f"{20 * np.log10(rms / median):+.1f} dB vs the median of its {len(signals)} recordings "
                    f"({median:.4f}), {20 * np.log10(rms / solo):+.1f} dB vs the median of its solo violin "
                    f"recordings ({solo:.4f}); DC {float(np.mean(audio)):+.1e}, peak {float(np.abs(audio).max()):.2f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    test_clips(Path(args.models))
    rendered(Path(args.models), args.seconds)


if __name__ == "__main__":
    main()
