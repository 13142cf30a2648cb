"""Windowed rendering: score -> waveform through the three trained models (what `performer render` runs).

    score notes --AlignmentModel, 5 s windows of score time, stitched-->  performed frames
                --SynthesisModel, mel.clip_frames windows, cross-faded--> log-mel (n_mels, T)
                --vocoder, chunks with context-->                          waveform (T * hop,)

The models were trained on 5-second clips, so every step runs on windows of that size and
joins them:

* **Timing** (:func:`predict_timing`). Windows of ``window_seconds`` of score time (along the
  score's tempo map, opened at the render tempo) advance by half a window. Each window is played at
  its own tempo, the map's there (its mean over the window's span where the tempo changes inside it,
  the notes then re-timed at that tempo), so every tempo change of the score is honoured; a tempo
  outside the model's tempo classes is a :class:`TempoRangeWarning`. The model predicts onsets
  relative to each window's first note; what is kept from a window is the interval between
  consecutive chords (and the durations) in its central part, where it saw context on both sides. The global timeline is
  the running sum of the kept intervals, so it is monotone by construction, and is made a valid
  frame timeline by :func:`pipeline.models.alignment.to_timeline`.
* **Mel** (:func:`synthesize_mel`). Windows of ``mel.clip_frames`` frames (the training clips') overlapping by
  ``overlap`` frames are cut exactly as training clips are (``cut_clip`` + ``collate_clips``),
  predicted in batches, and cross-faded with raised-cosine weights over the overlaps.
* **Performer**: one, or a blend (``"aurora:0.7,bruno:0.3"``, :mod:`pipeline.inference.runtime.blend`) whose
  weights (``performer_weights``) mix the performer embeddings of both the alignment model (timing)
  and the synthesis model (timbre); a blend with one weight > 0 plays that performer exactly.
* **Level**: trained on the log-mel's MSE, the synthesis model alone plays several dB too quietly; the
  mel is shifted as a whole by the shortfall its training stage measured on unseen pieces
  (``loudness="calibrated"``), or to the level of the performer's training recordings
  (``"performer"``), :mod:`pipeline.loudness`.
* **Waveform** (:func:`vocode`). The fully convolutional vocoder runs on chunks with
  ``context`` frames of real mel on each side, discarded afterwards: the result equals a single
  pass (up to float rounding) at bounded memory.

:func:`render_score` shows a progress bar with an ETA on stderr for each of the three steps that runs
for long (:mod:`pipeline.progress`: on a terminal after a second, in a log a line every 30 s at most);
the functions alone show none unless given ``progress``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.datasets.batching import collate_arrays, cut_clip
from pipeline.errors import PipelineError
from pipeline.inference.runtime.blend import PerformerSpec
from pipeline.inference.runtime.bundle import ModelBundle
from pipeline.inference.runtime.networks import mel_network, timing_network, wave_network
from pipeline.loudness import LOUDNESS, set_mel_level, shift_mel_db
from pipeline.progress import progress_bar
from pipeline.scores import NoteTable

# ------------------------------------------------------------------------------------------ timing


class TempoRangeWarning(UserWarning):
    """A tempo of the score outside the alignment model's tempo classes: played at the nearest end."""


def _chord_windows(group_ticks: np.ndarray, span: float) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` of chord indices covering all chords, each spanning < ``span`` of score
    time (``group_ticks``' unit: ticks, or seconds along a tempo map; but at least two chords), the
    next starting half a span later and overlapping the previous by at least one chord."""
    n = len(group_ticks)
    windows: list[tuple[int, int]] = []
    a = 0
    while True:
        b = int(np.searchsorted(group_ticks, group_ticks[a] + span, side="left"))
        b = min(n, max(b, a + 2))
        windows.append((a, b))
        if b >= n:
            return windows
        nxt = int(np.searchsorted(group_ticks, group_ticks[a] + span / 2, side="left"))
        a = min(max(nxt, a + 1), b - 1)


def predict_timing(
    model: Any,
    notes: NoteTable,
    performer: int,
    tempo_qpm: float,
    window_seconds: float = 5.0,
    batch_size: int = 32,
    performer_weights: np.ndarray | None = None,
    progress: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Performed ``(onset_frame, offset_frame)`` of every note of ``notes`` (int arrays, notes'
    order), onsets monotone in score time and chords together, first onset at frame 0.

    ``tempo_qpm``: the opening tempo; the notes' tempo map is scaled to open at it
    (:meth:`pipeline.scores.NoteTable.tempo_map`), and each window is played at the map's tempo there.
    A window tempo outside the model's ``tempo_range`` is played at the nearest end of it, with a
    :class:`TempoRangeWarning` that names the range.

    ``performer_weights``: optional ``(n_performers,)`` blend of the model's performers, played
    instead of ``performer``. ``progress``: show a progress bar of the windows with this description
    (:mod:`pipeline.progress`; None: none).

    ``model``: the torch ``AlignmentModel`` or a :class:`pipeline.inference.runtime.networks.TimingNetwork`."""
    if len(notes) == 0:
        raise PipelineError("the score has no notes", notes.name or "score")
    network = timing_network(model)
    ticks = notes.onset.astype(np.int64)
    group_ticks, group = np.unique(ticks, return_inverse=True)
    if len(notes.tempo_map(tempo_qpm)) == 1:  # one tempo: windows in ticks
        windows = _chord_windows(group_ticks, window_seconds * tempo_qpm / 60.0 * notes.resolution)
    else:  # windows of window_seconds of score time along the tempo map
        windows = _chord_windows(notes.time_at(group_ticks, tempo_qpm), window_seconds)

    low, high = (float(q) for q in network.hparams["tempo_range"])
    items, members, tempi, played_tempi = [], [], [], []
    for a, b in windows:
        idx = np.flatnonzero((group >= a) & (group < b))
        members.append(idx)
        qpm, onset, duration = _window_tempo(notes, idx, tempo_qpm)
        tempi.append(qpm)
        played = min(max(qpm, low), high)  # the model's classes end there (tempo_classes clamps too)
        played_tempi.append(played)
        items.append(_note_item(notes, idx, performer, played, performer_weights, (onset, duration)))
    slowest, fastest = min(tempi), max(tempi)
    for extreme, played in ((slowest, low),) * (slowest < low) + ((fastest, high),) * (fastest > high):
        warnings.warn(
            f"tempo {extreme:.4g} qpm is outside the {low:g}-{high:g} qpm the alignment model was "
            f"trained for: played at {played:g} qpm",
            TempoRangeWarning,
            stacklevel=2,  # the caller of predict_timing
        )
    # the model is told its tempo class, whose centre is up to half a class away from the tempo asked
    # for (+-2 % with 60 classes): its frames are rescaled from the centre to that tempo, so a piece
    # lasts its true length (an untrained model, the constant-tempo prior, then plays it exactly)
    preds: list[np.ndarray] = []
    with progress_bar(len(items), progress or "", "windows", disable=progress is None) as bar:
        for i in range(0, len(items), batch_size):
            pred, centers = network.predict(_collate(items[i : i + batch_size]))
            rescale = centers / np.asarray(played_tempi[i : i + len(pred)])
            preds.extend(pred[j, : len(members[i + j])] * rescale[j] for j in range(len(pred)))
            bar.update(len(pred))

    # chord j's interval (from chord j - 1) and durations come from the window whose core holds j
    n_groups = len(group_ticks)
    interval = np.zeros(n_groups)
    duration = np.zeros(len(notes))
    cores = [0] + [max(a + 1, (a + windows[k - 1][1] + 1) // 2) for k, (a, _) in enumerate(windows) if k > 0]
    cores.append(n_groups)
    for k, ((a, b), idx, pred) in enumerate(zip(windows, members, preds)):
        local = group[idx] - a
        chord_onset = np.bincount(local, weights=pred[:, 0], minlength=b - a) / np.bincount(local, minlength=b - a)
        lo, hi = cores[k], cores[k + 1]
        for j in range(max(lo, a + 1), hi):
            interval[j] = chord_onset[j - a] - chord_onset[j - a - 1]
        own = (group[idx] >= lo) & (group[idx] < hi)
        duration[idx[own]] = pred[own, 1]
    chord_time = np.cumsum(np.maximum(interval, 0.0))
    return frame_timeline(chord_time[group], duration, ticks)


def frame_timeline(onset: np.ndarray, duration: np.ndarray, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(onset_frame, offset_frame)`` int64 of notes predicted at ``onset`` / ``duration`` frames, with score
    onsets ``ticks``: :func:`pipeline.models.alignment.to_timeline` for one piece, in numpy (float32, in
    its order of operations, so both give the same frames; tested): chords at their mean onset, onsets a
    running maximum in score order and >= 0, ``offset = onset + max(1, round(duration))``."""
    onset, duration = np.asarray(onset, np.float32), np.asarray(duration, np.float32)
    order = np.argsort(ticks, kind="stable")
    sorted_key = np.asarray(ticks)[order]
    starts = np.ones(len(order), bool)
    starts[1:] = sorted_key[1:] != sorted_key[:-1]
    group = np.cumsum(starts) - 1
    total = np.zeros(len(order), np.float32)
    count = np.zeros(len(order), np.float32)
    np.add.at(total, group, onset[order])
    np.add.at(count, group, np.float32(1.0))
    chord = (total / np.maximum(count, np.float32(1.0)))[group]
    chord = np.maximum(np.maximum.accumulate(chord), np.float32(0.0))
    onset_frame = np.empty(len(order), np.int64)
    onset_frame[order] = np.round(chord).astype(np.int64)
    return onset_frame, onset_frame + np.maximum(np.round(duration), np.float32(1.0)).astype(np.int64)


def _window_tempo(notes: NoteTable, idx: np.ndarray, tempo_qpm: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The tempo (qpm) a window of notes is played at, and its notes' ``(onset, duration)`` in ticks as
    the model sees them.

    Where the tempo map does not change between the window's first onset and last offset: the tempo
    there and the notes as written. Where it does: the mean tempo over that span (ticks / seconds), and
    the notes re-timed at it (each note's onset and offset in seconds along the map, times the mean
    tempo's ticks per second, rounded), so that played at the one tempo the window gets, they sound
    when the map says."""
    onset, offset = notes.onset[idx].astype(np.int64), notes.offset[idx].astype(np.int64)
    start, end = int(onset.min()), int(offset.max())
    tempo_map = notes.tempo_map(tempo_qpm)
    if not np.any((tempo_map[:, 0] > start) & (tempo_map[:, 0] < end)):
        return float(notes.tempo_at(start, tempo_qpm)), onset, notes.duration[idx].astype(np.int64)
    at_start, at_end = notes.time_at(np.array([start, end]), tempo_qpm)
    qpm = (end - start) * 60.0 / (notes.resolution * (at_end - at_start))
    ticks_per_second = qpm * notes.resolution / 60.0
    on = np.round((notes.time_at(onset, tempo_qpm) - at_start) * ticks_per_second).astype(np.int64)
    off = np.round((notes.time_at(offset, tempo_qpm) - at_start) * ticks_per_second).astype(np.int64)
    return float(qpm), on, np.maximum(off - on, 1)


def _note_item(
    notes: NoteTable,
    idx: np.ndarray,
    performer: int,
    tempo_qpm: float,
    performer_weights: np.ndarray | None = None,
    score: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One window of notes in the form of a training clip (``cut_clip``'s keys; no mel), and the
    performer blend's weights when there is one. ``score``: the notes' ``(onset, duration)`` ticks
    when not as written (:func:`_window_tempo`)."""
    zeros = np.zeros(len(idx), dtype=np.int64)
    onset, duration = score if score is not None else (notes.onset[idx], notes.duration[idx])
    onset = onset.astype(np.int64)
    item = {
        "mel": np.zeros((1, 1), np.float32),
        "pitch": notes.pitch[idx].astype(np.int64),
        "velocity": notes.velocity[idx].astype(np.int64),
        "score_onset": onset - onset.min(),
        "score_duration": duration.astype(np.int64),
        "onset_frame": zeros,
        "offset_frame": zeros + 1,
        "target_onset": zeros.astype(np.float32),
        "target_duration": zeros.astype(np.float32),
        "performer_id": np.int64(performer),
        "tempo_qpm": np.float32(tempo_qpm),
    }
    return _with_weights(item, performer_weights)


def _with_weights(item: dict[str, Any], performer_weights: np.ndarray | None) -> dict[str, Any]:
    if performer_weights is not None:
        item["performer_weights"] = np.asarray(performer_weights, np.float32)
    return item


def _collate(items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """``collate_arrays``, plus ``performer_weights`` (B, n_performers) when the items carry a blend."""
    batch = collate_arrays(items)
    if "performer_weights" in items[0]:
        batch["performer_weights"] = np.stack([it["performer_weights"] for it in items]).astype(np.float32)
    return batch


# ------------------------------------------------------------------------------------------ mel


def _window_starts(n_frames: int, window: int, overlap: int) -> list[int]:
    hop = window - overlap
    starts = list(range(0, max(1, n_frames - overlap), hop))
    return starts or [0]


def crossfade_weights(length: int, fade_in: int, fade_out: int) -> np.ndarray:
    """(length,) weights: raised-cosine ramps of ``fade_in``/``fade_out`` frames at the ends, 1
    between. A fade-out and the next window's fade-in over the same frames sum to exactly 1."""

    def ramp(n: int) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)

    w = np.ones(length)
    if fade_in:
        w[:fade_in] *= ramp(fade_in)
    if fade_out:
        w[length - fade_out :] *= ramp(fade_out)[::-1]
    return w


def synthesize_mel(
    model: Any,
    notes: NoteTable,
    onset_frame: np.ndarray,
    offset_frame: np.ndarray,
    performer: int,
    n_frames: int,
    window: int,
    overlap: int = 64,
    batch_size: int = 16,
    performer_weights: np.ndarray | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """Log-mel ``(n_mels, n_frames)`` of the notes played at the given frames, predicted in ``window``
    frames at a time (the training clips' length, ``mel.clip_frames``).

    ``performer_weights``: optional ``(n_performers,)`` blend of the model's performers, played
    instead of ``performer``. ``progress``: show a progress bar of the windows with this description
    (:mod:`pipeline.progress`; None: none).

    ``model``: the torch ``SynthesisModel`` or a :class:`pipeline.inference.runtime.networks.MelNetwork`."""
    if not 0 <= 2 * overlap < window:
        raise ValueError("need 0 <= overlap < window / 2")
    network = mel_network(model)
    n_mels = network.hparams["n_mels"]
    data: dict[str, Any] = {
        "mel": np.zeros((n_mels, n_frames), np.float32),  # untouched pages: costs no memory
        "pitch": notes.pitch,
        "velocity": notes.velocity,
        "score_onset": notes.onset,
        "score_duration": notes.duration,
        "onset_frame": onset_frame,
        "offset_frame": offset_frame,
        "performer_id": np.int64(performer),
    }
    starts = _window_starts(n_frames, window, overlap)
    total = np.zeros((n_mels, n_frames))
    weight = np.zeros(n_frames)
    with progress_bar(len(starts), progress or "", "windows", disable=progress is None) as bar:
        for i in range(0, len(starts), batch_size):
            chunk = starts[i : i + batch_size]
            clips = [_with_weights(cut_clip(data, s, min(window, n_frames - s)), performer_weights) for s in chunk]
            mel = network.predict(_collate(clips))
            for j, s in enumerate(chunk):
                length = clips[j]["mel"].shape[1]
                first, last = s == 0, s + length >= n_frames
                w = crossfade_weights(length, 0 if first else overlap, 0 if last else overlap)
                total[:, s : s + length] += mel[j, :, :length] * w
                weight[s : s + length] += w
            bar.update(len(chunk))
    return (total / np.maximum(weight, 1e-8)).astype(np.float32)


# ------------------------------------------------------------------------------------------ waveform


def vocode(
    vocoder: Any,
    mel: np.ndarray,
    chunk_frames: int = 1024,
    context: int = 32,
    source: np.ndarray | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """Waveform ``(frames * hop,)`` of a log-mel ``(n_mels, frames)``, in chunks with context (the
    chunks' joins are exact: ``context`` frames exceed every vocoder's receptive field).

    ``source``: the excitation ``([channels,] frames * hop)`` of a source-filter vocoder
    (``vocoder.make_source``); required by such a vocoder, ignored by the plain one. ``progress``: show a
    progress bar of the mel frames with this description (:mod:`pipeline.progress`; None: none).

    The output is made ``vocoder.calibration.level_offset_db`` dB louder: the shortfall its training stage measured
    on its validation clips (its calibration, :mod:`pipeline.models.calibration`).

    ``vocoder``: a torch vocoder or a :class:`pipeline.inference.runtime.networks.WaveNetwork`."""
    network = wave_network(vocoder)
    hop = network.hop_length
    bins = network.n_mels
    if mel.ndim != 2 or mel.shape[0] != bins:
        raise PipelineError(f"the vocoder takes a mel of shape ({bins}, frames), got {tuple(mel.shape)}")
    if not np.isfinite(mel).all():
        raise PipelineError("the mel holds NaN or infinite values: nothing to vocode")
    n_frames = mel.shape[1]
    if network.excitation and source is None:
        raise PipelineError("this vocoder needs the notes' excitation (vocoder.make_source)")
    mel = np.asarray(mel, np.float32)
    if network.excitation:
        assert source is not None
        source = np.asarray(source, np.float32)
        if source.shape[-1] != n_frames * hop:
            raise PipelineError(f"excitation has {source.shape[-1]} samples, expected {n_frames * hop}")
    else:
        source = None
    out = np.zeros(n_frames * hop, np.float32)
    gain = np.float32(10.0 ** (network.calibration.level_offset_db / 20.0))
    with progress_bar(n_frames, progress or "", "frames", disable=progress is None) as bar:
        for start in range(0, n_frames, chunk_frames):
            stop = min(n_frames, start + chunk_frames)
            lo, hi = max(0, start - context), min(n_frames, stop + context)
            chunk_source = None if source is None else source[..., lo * hop : hi * hop][None]
            audio = network.synthesize(mel[None, :, lo:hi], chunk_source)
            out[start * hop : stop * hop] = gain * audio[(start - lo) * hop : (stop - lo) * hop]
            bar.update(stop - start)
    return out


# ------------------------------------------------------------------------------------------ all three


@dataclass
class Rendering:
    audio: np.ndarray  # (samples,) float32 at sample_rate
    mel: np.ndarray  # (n_mels, frames)
    onset_frame: np.ndarray  # (notes,) performed onset frame of every note, in the score's note order
    offset_frame: np.ndarray  # (notes,) exclusive
    sample_rate: int
    hop_length: int
    performer: str = ""  # who played: a name or the normalised blend, e.g. "aurora:0.7,bruno:0.3"

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def render_score(
    models: ModelBundle,
    notes: NoteTable,
    performer: PerformerSpec,
    tempo_qpm: float | None = None,
    tail_seconds: float = 0.5,
    loudness: str = "calibrated",
) -> Rendering:
    """Perform ``notes`` as ``performer`` at ``tempo_qpm`` (the score's own by default).

    ``tempo_qpm`` is the opening tempo: the score's tempo changes are all played, the whole tempo map
    scaled by ``tempo_qpm / the score's first tempo`` (:meth:`pipeline.scores.NoteTable.tempo_map`).

    ``performer``: a name, or a blend ``"aurora:0.7,bruno:0.3"`` / ``{"aurora": 0.7, "bruno": 0.3}``
    (:mod:`pipeline.inference.runtime.blend`; weights normalised to sum 1) that mixes the performer embeddings
    of both the alignment and the synthesis model. A blend with one weight > 0 renders exactly as that
    performer alone (the models' plain lookup).

    ``loudness``: ``"calibrated"`` adds to the predicted mel the dB its synthesis model falls short of
    the recordings' level on unseen pieces (:attr:`PerformerModels.level_offset_db`, measured by its
    training stage; what the evaluation scores too), so the piece keeps its own level, loud or soft;
    ``"performer"`` sets the whole piece to the level of the performer's training recordings
    (:meth:`PerformerModels.level_db`); ``"model"`` keeps the synthesis model's own level, several dB
    quieter (:mod:`pipeline.loudness` says why). The mel is shifted as a whole, so the dynamics within
    the piece stay the model's. Models without these measurements play at their own level."""
    if loudness not in LOUDNESS:
        raise PipelineError(f"loudness must be one of {', '.join(LOUDNESS)}, not {loudness!r}")
    mel = models.mel
    if len(notes) == 0:
        raise PipelineError("the score has no notes", notes.name or "score")
    frame_rate = mel.sample_rate / mel.hop_length
    qpm = notes.tempo_qpm if tempo_qpm is None else float(tempo_qpm)  # 0 is an error, not "the score's"
    if not 0 < qpm < 1000:
        raise PipelineError(f"tempo must be between 0 and 1000 quarter notes per minute, not {qpm:g}", notes.name)
    blend = models.performer_blend(performer)
    performer_id = blend.main_id
    mixed = blend.single is None  # else the plain lookup: exactly the single performer's render
    timing_weights = blend.vector(models.alignment.hparams["n_performers"]) if mixed else None
    mel_weights = blend.vector(models.synthesis.hparams["n_performers"]) if mixed else None
    order = np.lexsort((notes.pitch, notes.onset))  # score order, chords by pitch
    played = notes.subset(order)
    onset_sorted, offset_sorted = predict_timing(
        models.alignment, played, performer_id, qpm, performer_weights=timing_weights, progress="render: timing"
    )
    n_frames = int(offset_sorted.max()) + int(round(tail_seconds * frame_rate))
    spec = synthesize_mel(
        models.synthesis,
        played,
        onset_sorted,
        offset_sorted,
        performer_id,
        n_frames,
        window=mel.clip_frames,
        performer_weights=mel_weights,
        progress="render: mel",
    )
    target_db = models.level_db(blend) if loudness == "performer" else None
    if target_db is not None:
        spec = set_mel_level(spec, target_db)
    elif loudness == "calibrated":
        spec = shift_mel_db(spec, models.level_offset_db)
    onset_frame, offset_frame = np.empty_like(onset_sorted), np.empty_like(offset_sorted)
    onset_frame[order], offset_frame[order] = onset_sorted, offset_sorted
    source = wave_network(models.vocoder).make_source(
        played.pitch, onset_sorted, offset_sorted, n_frames, mel.sample_rate
    )
    audio = vocode(models.vocoder, spec, source=source, progress="render: vocoder")
    peak = float(np.abs(audio).max())
    if peak > 0.99:  # keep the dynamics; only avoid clipping
        audio *= 0.99 / peak
    return Rendering(audio, spec, onset_frame, offset_frame, mel.sample_rate, mel.hop_length, str(blend))
