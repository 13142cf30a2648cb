"""Pictures people look at: log-mel spectrograms with the aligned notes drawn on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import MelConfig
from pipeline.io import atomic_path


def plot_mel_with_notes(
    path: str | Path, mel: np.ndarray, data: dict | None, config: MelConfig, title: str = ""
) -> None:
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = mel.shape[1] * config.hop_length / config.sample_rate
    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, mel.shape[0]))
    if data is not None:
        mel_hz = librosa.mel_frequencies(n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
        for p, on, off in zip(data["pitch"], data["onset_frame"], data["offset_frame"]):
            y = np.interp(librosa.midi_to_hz(p), mel_hz, np.arange(config.n_mels))
            t0, t1 = on * config.hop_length / config.sample_rate, off * config.hop_length / config.sample_rate
            ax.plot([t0, t1], [y, y], color="cyan", linewidth=1.2, alpha=0.8)
            ax.plot([t0], [y], "o", color="white", markersize=2.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
