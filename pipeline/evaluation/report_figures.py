"""The listening report's pictures (matplotlib, Agg, no pyplot state): the score of a clip as a piano roll
and a system's log-mel spectrogram with the score's notes drawn over it, each written as a PNG.

:mod:`pipeline.evaluation.report` lays them out on the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import MelConfig
from pipeline.io import atomic_path

if TYPE_CHECKING:
    from pipeline.evaluation.report import ReportClip


def _figure(width: float, height: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")


def frames_to_seconds(frames, mel: MelConfig) -> np.ndarray:
    """Start times in seconds of mel frames."""
    return np.asarray(frames, dtype=np.float64) * mel.hop_length / mel.sample_rate


_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _note_name(midi: float) -> str:
    """``60 -> "C4"``; a non-integer tick keeps its number."""
    if abs(midi - round(midi)) > 1e-6:
        return f"{midi:g}"
    m = int(round(midi))
    return f"{_NOTE_NAMES[m % 12]}{m // 12 - 1}"


def plot_piano_roll(path: Path, clip: ReportClip, seconds: float, mel: MelConfig) -> None:
    """The clip's score notes as horizontal bars (time in s, pitch by note name) over ``seconds``."""
    pitch = np.asarray(clip.pitch, dtype=np.float64).ravel()
    t0 = frames_to_seconds(clip.onset_frame, mel).ravel()
    t1 = frames_to_seconds(clip.offset_frame, mel).ravel()
    fig = _figure(10, 2.2, dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    if pitch.size:
        width = np.maximum(t1 - t0, 1.0 / 100)
        ax.barh(pitch, width, left=t0, height=0.8, color="#3b6fb6", edgecolor="#1d3d6e", linewidth=0.6)
        lo, hi = float(pitch.min()), float(pitch.max())
        pad = max(2.0, 0.1 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
    else:
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center", color="#888")
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _note_name(v)))
    ax.set_xlim(0, max(seconds, 1e-3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    ax.grid(axis="y", color="#e4e4e4", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout(pad=0.4)
    _save(fig, path)


def _note_mel_bins(pitch: np.ndarray, n_mels: int, mel: MelConfig) -> np.ndarray:
    """Fractional mel bins of the notes' fundamentals (the mel recipe's fmin..fmax)."""
    import librosa

    mel_hz = librosa.mel_frequencies(n_mels=n_mels, fmin=mel.fmin, fmax=mel.fmax)
    return np.interp(librosa.midi_to_hz(np.asarray(pitch, dtype=np.float64)), mel_hz, np.arange(n_mels))


def plot_mel(
    path: Path, mel: np.ndarray, clip: ReportClip, seconds: float, vmin: float, vmax: float, recipe: MelConfig
) -> None:
    """A log-mel ``(n_mels, T)`` on the colour scale ``vmin..vmax`` (shared by a clip's systems), the notes'
    fundamentals drawn over it."""
    n_mels, frames = mel.shape
    fig = _figure(4, 1.5, dpi=160)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("#eef0f3")
    ax.imshow(
        mel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=vmin,
        vmax=vmax,
        extent=(0, frames * recipe.hop_length / recipe.sample_rate, 0, n_mels),
        interpolation="nearest",
    )
    pitch = np.asarray(clip.pitch).ravel()
    if pitch.size:
        ys = _note_mel_bins(pitch, n_mels, recipe)
        starts = frames_to_seconds(clip.onset_frame, recipe).ravel()
        ends = frames_to_seconds(clip.offset_frame, recipe).ravel()
        for y, a, b in zip(ys, starts, ends):
            ax.plot([a, b], [y, y], color="#7fe3ff", linewidth=0.9, alpha=0.7)
    ax.set_xlim(0, max(seconds, 1e-3))
    ax.set_ylim(0, n_mels)
    ax.set_xlabel("time (s)", fontsize=8, labelpad=1)
    ax.set_ylabel("mel bin", fontsize=8, labelpad=1)
    ax.tick_params(labelsize=7, length=2, pad=1)
    fig.tight_layout(pad=0.25)
    _save(fig, path)
