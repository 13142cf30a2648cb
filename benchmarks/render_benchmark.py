"""`performer render` speed: a minute of music through the three models, beside the vocoder alone.

The score is built-in violin material (``align_benchmark.long_score``: violin I parts of music21
corpus quartets end to end) cut to ``--seconds`` of score time. For each set of models it times,
``--repeats`` times each, on ``--threads`` CPU threads (or the GPU with ``--device cuda``):

* ``render``: ``pipeline.inference.render_score`` (alignment windows -> synthesis windows ->
  chunked HiFi-GAN), what the command runs after loading the models and reading the score;
* ``timing``, ``mel``, ``vocoder``: its three parts alone (``vocoder`` = the baseline: the
  vocoder alone on the same mel).

Real-time factor = seconds of compute / seconds of audio produced (lower is faster; 0.1 = ten
times faster than real time). Medians are reported.

    python benchmarks/render_benchmark.py                     # models/ (trained) and paper-size models
    python benchmarks/render_benchmark.py --json render.json --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.align_benchmark import long_score  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.inference.models import PerformerModels  # noqa: E402
from pipeline.inference.runtime.render import predict_timing, render_score, synthesize_mel, vocode  # noqa: E402
from pipeline.models.alignment import AlignmentModel  # noqa: E402
from pipeline.models.hifigan import Generator  # noqa: E402
from pipeline.models.synthesis import SynthesisModel  # noqa: E402
from pipeline.models.vocoders import vocoder_for_mel  # noqa: E402
from pipeline.registry.loading import load_models  # noqa: E402

MEL = load_params(ROOT / "params.yaml").mel  # the project's mel recipe


def paper_models(device: torch.device) -> PerformerModels:
    """Untrained models at the paper's sizes (Tables 4 and 5, HiFi-GAN V2): the same compute as trained ones."""
    names = ("a", "b", "c", "d")
    return PerformerModels(
        AlignmentModel(n_performers=4, performer_names=names, frame_rate=MEL.sample_rate / MEL.hop_length).eval(),
        SynthesisModel(n_performers=4, performer_names=names).eval(),
        Generator().eval().remove_weight_norm(),
        MEL,
    ).to(device)


def paper_models_source_filter(device: torch.device) -> PerformerModels:
    """The paper-size alignment and synthesis models with the GPU-scale source-filter vocoder
    (params/paper-*.yaml: 512 channels, 8 blocks)."""
    models = paper_models(device)
    vocoder = vocoder_for_mel("source_filter", {"channels": 512, "layers": 8}, MEL)
    return PerformerModels(models.alignment, models.synthesis, vocoder.eval(), MEL).to(device)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def seam_flux(models: PerformerModels, notes, on, off, pid: int, n_frames: int) -> dict:
    """Frame-to-frame change of the mel where windows meet, relative to everywhere (1.0 = no seam).

    With ``overlap=0`` windows are butted together at multiples of the window length; with the
    default overlap they are cross-faded and the ratio is taken over the overlapping frames.
    """
    out = {}
    for overlap in (0, 64):
        mel = synthesize_mel(models.synthesis, notes, on, off, pid, n_frames, window=MEL.clip_frames, overlap=overlap)
        flux = np.abs(np.diff(mel, axis=1)).mean(axis=0)  # flux[t - 1]: change from frame t - 1 to t
        hop = MEL.clip_frames - overlap
        seams = [f for s in range(hop, n_frames, hop) for f in range(s, min(n_frames, s + max(1, overlap)))]
        out[f"seam_flux_ratio_overlap{overlap}"] = round(float(flux[np.array(seams) - 1].mean() / flux.mean()), 3)
    return out


def bench(name: str, models: PerformerModels, seconds: float, repeats: int) -> dict:
    notes = long_score(seconds).sorted()
    performer = models.performers[0] if models.performers else "0"
    pid = models.performer_id(performer)
    render_score(models, notes.subset(np.arange(min(20, len(notes)))), performer)  # warm-up
    t_render, result = timed(lambda: render_score(models, notes, performer), repeats)
    t_timing, (on, off) = timed(lambda: predict_timing(models.alignment, notes, pid, notes.tempo_qpm), repeats)
    n_frames = result.mel.shape[1]
    t_mel, mel = timed(
        lambda: synthesize_mel(models.synthesis, notes, on, off, pid, n_frames, window=MEL.clip_frames), repeats
    )
    source = models.vocoder.make_source(notes.pitch, on, off, n_frames, result.sample_rate)  # None: mel-only vocoder
    t_vocoder, _ = timed(lambda: vocode(models.vocoder, mel, source=source), repeats)
    level = {
        "rms": round(float(np.sqrt(np.mean(np.square(result.audio, dtype=np.float64)))), 4),
        "dc": round(float(np.mean(result.audio)), 5),
    }
    audio_s = result.seconds
    seams = seam_flux(models, notes, on, off, pid, n_frames)
    row = {
        "models": name,
        "notes": len(notes),
        "audio_s": round(audio_s, 2),
        "render_s": round(t_render, 3),
        "render_rtf": round(t_render / audio_s, 4),
        "timing_s": round(t_timing, 3),
        "mel_s": round(t_mel, 3),
        "vocoder_s": round(t_vocoder, 3),
        "vocoder_rtf": round(t_vocoder / audio_s, 4),
        **level,
        **seams,
    }
    print(
        f"{name:10s} {len(notes):5d} notes {audio_s:6.1f} s audio | render {t_render:6.2f} s (RTF {row['render_rtf']:.3f}) "
        f"= timing {t_timing:.2f} + mel {t_mel:.2f} + vocoder {t_vocoder:.2f} s (vocoder alone RTF {row['vocoder_rtf']:.3f}); "
        f"seam flux ratio butted {seams['seam_flux_ratio_overlap0']:.2f}, cross-faded {seams['seam_flux_ratio_overlap64']:.2f}; "
        f"output RMS {level['rms']:.4f}, DC {level['dc']:+.5f}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="score length at the score tempo")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=str(ROOT / "models"), help="trained models folder ('' to skip)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
        f"device {device}",
        flush=True,
    )
    rows = []
    if args.models and (Path(args.models) / "hifigan" / "model.pt").is_file():
        rows.append(bench("trained", load_models(args.models, MEL, device), args.seconds, args.repeats))
    rows.append(bench("paper-size", paper_models(device), args.seconds, args.repeats))
    rows.append(
        bench("paper-size, source-filter vocoder", paper_models_source_filter(device), args.seconds, args.repeats)
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    with torch.inference_mode():
        main()
