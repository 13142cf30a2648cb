"""Automatic music transcription for evaluation: notes and frame pitches heard in synthesised audio.

The transcriber is Spotify's Basic Pitch (ICASSP 2022), the ONNX export shipped inside the
``basic-pitch`` package, run on onnxruntime (the package's own inference code needs TensorFlow,
which this project does not install; only the model file is used). The network sees 2-second
windows at 22.05 kHz and returns, per 256-sample frame (~86 frames/s) and per piano key (MIDI
21-108), a frame ("note") and an onset posterior, plus a 1/3-semitone pitch contour. Windowing
and the note decoding are this module's own:

* windows overlap so that every kept frame has >= 15 frames of context on each side, and the hop
  is a whole number of frames, so the stitched frames lie on one uniform grid
  (frame ``k`` is centred at ``k * 256 / 22050`` s, checked on FluidSynth notes: onset peaks land
  0-1 frame after the true onset);
* notes are decoded as in Basic Pitch: onset peaks above ``onset_threshold`` start notes that last
  while the frame posterior stays above ``frame_threshold`` (gaps shorter than ~128 ms bridged);
  optionally (``melodia_trick``) notes without an onset peak are then taken from the leftover
  frame energy. Two additions for bowed strings (see :func:`decode_notes`): a latency subtracted
  from the note times, and a stricter onset threshold on keys already sounding.

Only the decoding depends on the settings (:class:`Decoding`), so :func:`tune_thresholds` runs
the network once per clip and decodes it for every grid point. The defaults are the best of a
1728-point grid on the built-in corpus's non-test recordings (178 clips of 5 s): note-onset F1
of the recordings against their own scores 0.88 on the violin (monophonic) clips, 0.64 on the
chorales (0.90-0.94 with the TimGM6mb violin, 0.43-0.72 with FluidR3's reverberant strings).
The latency (50 ms) fits bowed attacks: on a piano, notes come out ~40 ms early (pass
``latency_seconds=0``). The network takes ~0.17 s per 5-s clip on one core; decoding < 1 ms.

Metrics (mir_eval): :func:`note_metrics` (note-onset F1 and note F1 with offsets) and
:func:`multipitch_accuracy` (frame-level accuracy, polyphonic material included).
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
import warnings
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

MODEL_SAMPLE_RATE = 22050  # the rate Basic Pitch was trained at
MODEL_HOP = 256  # samples per output frame at MODEL_SAMPLE_RATE
WINDOW_SAMPLES = 43844  # the ONNX model's fixed input length (2 s minus one hop)
WINDOW_FRAMES = 172  # output frames per window (centred frames 0..171)
CONTEXT_FRAMES = 15  # frames dropped at each window edge (Basic Pitch drops 15 too)
KEPT_FRAMES = WINDOW_FRAMES - 2 * CONTEXT_FRAMES - 1  # 141: the hop is a whole number of frames
BATCH_WINDOWS = 8  # windows per onnxruntime call (~50 ms each on one core; outputs measured batch-size independent)
LOWEST_MIDI = 21  # key 0 of the 88 outputs
N_KEYS = 88
CONTOUR_BINS_PER_SEMITONE = 3  # contour bin k is MIDI 21 + (k - 1) / 3 (bin 1 is A0; measured on tones)
CONTOUR_BIN_OF_LOWEST_MIDI = 1
ENERGY_TOLERANCE_SECONDS = 0.128  # a note survives frame-posterior dips shorter than this (11 frames)
MODEL_FILE = ("saved_models", "icassp_2022", "nmp.onnx")
_INPUT = "serving_default_input_2:0"
_OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")  # note onset contour

REONSET_LOOKBACK_SECONDS = 0.046  # "already sounding": the frame posterior 4 frames before the onset


@dataclass(frozen=True)
class Decoding:
    """How posteriors become notes. Defaults chosen by benchmarks/transcriber_tuning.py on the
    built-in corpus's training recordings (docs/benchmarks.md, "f0 tracker and transcriber")."""

    onset_threshold: float = 0.5  # an onset-posterior peak at least this high starts a note
    frame_threshold: float = 0.4  # a note lasts while its frame posterior stays this high; the frame roll
    min_note_seconds: float = 0.058  # shorter notes are dropped
    melodia_trick: bool = True  # add notes without an onset from the leftover frame energy
    infer_onsets: bool = False  # also start notes where the frame posterior jumps
    latency_seconds: float = 0.05  # subtracted from note times: the network's lag behind note-on
    reonset_threshold: float | None = 0.8  # an onset on a key already sounding must reach this (None: off)


@dataclass(frozen=True)
class Posteriors:
    """The network's output on one signal, on the uniform frame grid ``frame_times`` (seconds)."""

    frame_times: np.ndarray  # (T,)
    note: np.ndarray  # (T, 88) frame posterior per key, MIDI 21..108
    onset: np.ndarray  # (T, 88) onset posterior per key
    contour: np.ndarray  # (T, 264) pitch salience, 3 bins per semitone; bin 1 is MIDI 21

    @property
    def frame_seconds(self) -> float:
        return MODEL_HOP / MODEL_SAMPLE_RATE


@dataclass
class Transcription:
    """Notes (``intervals`` in seconds, ``pitches`` in MIDI) and the frame-level piano roll."""

    intervals: np.ndarray  # (N, 2) float64 onset, offset seconds
    pitches: np.ndarray  # (N,) float64 MIDI
    frame_times: np.ndarray  # (T,) seconds, the transcriber's frame grid
    frame_roll: np.ndarray  # (T, 88) bool: key active (frame posterior >= frame_threshold), MIDI 21..108
    latency_seconds: float = 0.0  # frame k shows the score at frame_times[k] - latency_seconds

    def frame_pitches(self) -> list[np.ndarray]:
        """Active MIDI pitches of every frame (empty arrays where nothing sounds)."""
        return [np.flatnonzero(row).astype(np.float64) + LOWEST_MIDI for row in self.frame_roll]

    def __len__(self) -> int:
        return len(self.pitches)


# ---------------------------------------------------------------- the network


def model_path() -> Path:
    """The ONNX file inside the installed ``basic_pitch`` package (found without importing it:
    its ``__init__`` probes for TensorFlow, CoreML and TFLite and logs a warning for each)."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError("the transcriber needs the basic-pitch package: pip install --no-deps basic-pitch==0.4.0")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MODEL_FILE)
    if not path.is_file():
        raise PipelineError("basic-pitch is installed but lacks its ONNX model (reinstall basic-pitch==0.4.0)", path)
    return path


_SESSION_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _session(path: str, threads: int):
    """One onnxruntime session per (model, threads), shared by every Transcriber of the process.

    Sequential execution and a fixed thread count keep the floating-point reduction order, hence
    the output bytes, the same from run to run.
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise PipelineError("the transcriber needs onnxruntime: pip install onnxruntime") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def forget_sessions() -> None:
    """Drop this process's onnxruntime sessions: a forked process makes its own (a session is not to be
    used across a fork)."""
    _session.cache_clear()


def _to_model_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at MODEL_SAMPLE_RATE (soxr, deterministic); channels, if any, are averaged."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (samples, channels), got shape {audio.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if sample_rate != MODEL_SAMPLE_RATE and len(audio):
        import soxr

        audio = soxr.resample(audio, sample_rate, MODEL_SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(audio)


def _frame_times(frames: int) -> np.ndarray:
    """Centre times (s) of the network's frames: frame ``k`` at ``k`` hops."""
    return np.arange(frames) * (MODEL_HOP / MODEL_SAMPLE_RATE)


def _windows(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """``(n_windows, WINDOW_SAMPLES, 1)`` windows and the frame count T of ``audio`` (model rate).

    The signal is front-padded by CONTEXT_FRAMES hops so that kept frame ``CONTEXT_FRAMES`` of
    window 0 is centred on sample 0; windows advance by KEPT_FRAMES hops.
    """
    frames = -(-len(audio) // MODEL_HOP)  # frames whose centre lies inside the audio
    n_windows = max(1, -(-frames // KEPT_FRAMES))
    hop = KEPT_FRAMES * MODEL_HOP
    padded = np.zeros((n_windows - 1) * hop + WINDOW_SAMPLES, np.float32)
    start = CONTEXT_FRAMES * MODEL_HOP
    padded[start : start + len(audio)] = audio
    index = np.arange(n_windows)[:, None] * hop + np.arange(WINDOW_SAMPLES)[None, :]
    return padded[index][..., None], frames


# ---------------------------------------------------------------- note decoding


def _peaks(onset: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(frame, key) of local maxima in time of ``onset`` at or above ``threshold``; a flat top
    counts once, at its first frame (Basic Pitch's strict ``argrelmax`` drops flat tops, and the
    inferred onsets produce them: a note was lost that way)."""
    if onset.shape[0] < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    middle = onset[1:-1]
    is_peak = (middle > onset[:-2]) & (middle >= onset[2:]) & (middle >= threshold)
    frame, key = np.nonzero(is_peak)
    return frame + 1, key


def _inferred_onsets(onset: np.ndarray, note: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """Onset posterior raised where the frame posterior jumps (Basic Pitch's ``infer_onsets``):
    repeated notes whose onset head stays quiet still start a note."""
    rise = np.full(note.shape, np.inf, np.float32)
    for n in range(1, n_diff + 1):
        shifted = np.concatenate([np.zeros((n, note.shape[1]), note.dtype), note[:-n]])
        rise = np.minimum(rise, note - shifted)
    rise = np.maximum(rise, 0.0)
    rise[:n_diff] = 0.0
    top = rise.max() if rise.size else 0.0
    if top > 0:
        rise = rise * (onset.max() / top)
    return np.maximum(onset, rise)


def _walk(column: np.ndarray, start: int, stop: int, step: int, threshold: float, tolerance: int) -> tuple[int, int]:
    """Walk from ``start`` towards ``stop`` (excluded) by ``step`` until ``tolerance`` frames in a
    row fall below ``threshold``. Returns (the frame after the last one walked, the quiet run at the
    end of the walk): the note's loud frames end ``quiet`` frames before the walk did."""
    i, quiet = start, 0
    while (stop - i) * step > 0 and quiet < tolerance:
        quiet = quiet + 1 if column[i] < threshold else 0
        i += step
    return i, quiet


def decode_notes(post: Posteriors, decoding: Decoding | None = None) -> Transcription:
    """Notes from the posteriors (Basic Pitch's decoding, re-implemented without its TF imports).

    Onsets are taken latest first, so an earlier note of the same key ends where a later one starts;
    each note clears the energy of its key and both neighbours (a bent or vibrato note lights them).
    Two additions, both measured on bowed strings: ``latency_seconds`` is subtracted from the note
    times and recorded for the frame roll (the network calls a bowed note's onset once its slow
    attack has grown, 20-50 ms after note-on), and ``reonset_threshold`` asks more of an onset on
    a key that is already sounding (vibrato and bow swells re-trigger held notes).
    """
    d = decoding or Decoding()
    note = np.asarray(post.note, np.float32)
    frames = note.shape[0]
    roll = note >= d.frame_threshold
    if frames == 0:
        return Transcription(np.zeros((0, 2)), np.zeros(0), post.frame_times, roll, d.latency_seconds)
    onset = _inferred_onsets(np.asarray(post.onset, np.float32), note) if d.infer_onsets else post.onset
    tolerance = max(1, round(ENERGY_TOLERANCE_SECONDS / post.frame_seconds))
    min_frames = round(d.min_note_seconds / post.frame_seconds)
    energy = note.copy()
    found: list[tuple[int, int, int]] = []
    starts, keys = _peaks(onset, d.onset_threshold)
    if d.reonset_threshold is not None and len(starts):  # a key already sounding needs a stronger onset
        before = np.maximum(starts - round(REONSET_LOOKBACK_SECONDS / post.frame_seconds), 0)
        sounding = note[before, keys] >= d.frame_threshold
        keep = ~sounding | (onset[starts, keys] >= d.reonset_threshold)
        starts, keys = starts[keep], keys[keep]
    order = np.lexsort((keys, starts))[::-1]  # latest first; ties broken by key, deterministically
    for start, key in zip(starts[order].tolist(), keys[order].tolist()):
        if start >= frames - 1:
            continue
        walked, quiet = _walk(energy[:, key], start + 1, frames - 1, 1, d.frame_threshold, tolerance)
        end = walked - quiet  # exclusive
        if end - start <= min_frames:
            continue
        energy[start:end, max(key - 1, 0) : key + 2] = 0.0
        found.append((start, end, key))
    if d.melodia_trick:
        found += _energy_notes(energy, d.frame_threshold, tolerance, min_frames)
    found.sort()
    times = post.frame_times
    if not found:
        return Transcription(np.zeros((0, 2)), np.zeros(0), times, roll, d.latency_seconds)
    first, last, note_key = (np.array(col) for col in zip(*found))
    intervals = np.stack([first, np.minimum(last, frames)], axis=1) * post.frame_seconds  # frame k is at k hops
    intervals = np.maximum(intervals - d.latency_seconds, 0.0)
    intervals[:, 1] = np.maximum(intervals[:, 1], intervals[:, 0] + post.frame_seconds)
    return Transcription(intervals, (note_key + LOWEST_MIDI).astype(np.float64), times, roll, d.latency_seconds)


def _energy_notes(energy: np.ndarray, threshold: float, tolerance: int, min_frames: int) -> list[tuple[int, int, int]]:
    """Basic Pitch's "melodia trick": notes grown both ways from the strongest leftover frame;
    everything walked over (the key and its neighbours) is cleared, kept or not."""
    frames = energy.shape[0]
    found = []
    while energy.size and energy.max() > threshold:
        mid, key = (int(v) for v in np.unravel_index(int(np.argmax(energy)), energy.shape))
        energy[mid, key] = 0.0
        column, keys = energy[:, key], slice(max(key - 1, 0), key + 2)
        after, quiet_after = _walk(column, mid + 1, frames - 1, 1, threshold, tolerance)
        before, quiet_before = _walk(column, mid - 1, 0, -1, threshold, tolerance)
        energy[mid + 1 : after, keys] = 0.0
        energy[before + 1 : mid, keys] = 0.0
        start, end = before + 1 + quiet_before, after - quiet_after  # first loud frame, one past the last
        if end - start > min_frames:
            found.append((start, end, key))
    return found


# ---------------------------------------------------------------- the transcriber


class Transcriber:
    """Basic Pitch on onnxruntime: ``transcribe(audio, sample_rate) -> Transcription``.

    The ONNX session is created on first use and shared by every instance with the same thread
    count. One thread by default: the evaluation runs beside training on small machines, and a
    fixed count keeps the output bytes reproducible.
    """

    def __init__(
        self,
        onset_threshold: float = Decoding.onset_threshold,
        frame_threshold: float = Decoding.frame_threshold,
        min_note_seconds: float = Decoding.min_note_seconds,
        threads: int = 1,
        **decoding,
    ) -> None:
        """``decoding``: the other fields of :class:`Decoding` (defaults: the tuned ones)."""
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.decoding = Decoding(onset_threshold, frame_threshold, min_note_seconds, **decoding)
        self.threads = threads

    def _session(self):
        with _SESSION_LOCK:
            return _session(str(model_path()), self.threads)

    def posteriors(self, audio: np.ndarray, sample_rate: int) -> Posteriors:
        """Run the network (the expensive part, independent of the thresholds)."""
        signal = _to_model_rate(audio, sample_rate)
        if len(signal) == 0:
            return Posteriors(
                _frame_times(0),
                np.zeros((0, N_KEYS), np.float32),
                np.zeros((0, N_KEYS), np.float32),
                np.zeros((0, N_KEYS * CONTOUR_BINS_PER_SEMITONE), np.float32),
            )
        windows, frames = _windows(signal)
        session = self._session()
        parts: list[list[np.ndarray]] = [[], [], []]
        for first in range(0, len(windows), BATCH_WINDOWS):
            batch = windows[first : first + BATCH_WINDOWS]
            for part, out in zip(parts, session.run(list(_OUTPUTS), {_INPUT: batch})):
                part.append(out[:, CONTEXT_FRAMES : CONTEXT_FRAMES + KEPT_FRAMES])
        note, onset, contour = (np.concatenate(p).reshape(-1, p[0].shape[-1])[:frames] for p in parts)
        return Posteriors(_frame_times(frames), note, onset, contour)

    def decode(self, post: Posteriors) -> Transcription:
        return decode_notes(post, self.decoding)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Transcription:
        """Notes and frame pitches of ``audio`` (mono, or channels averaged) at ``sample_rate``."""
        return self.decode(self.posteriors(audio, sample_rate))


# ---------------------------------------------------------------- metrics


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def note_metrics(
    est: Transcription,
    ref_intervals: np.ndarray,
    ref_pitches: np.ndarray,
    tuning_cents: float = 0.0,
    onset_tolerance: float = 0.05,
    pitch_tolerance_cents: float = 50.0,
    ref_onset_heard: np.ndarray | None = None,
) -> dict[str, float]:
    """Note-level scores (mir_eval.transcription) of ``est`` against score notes.

    ``tuning_cents`` shifts the reference (e.g. -100 for baroque pitch with untransposed notes).
    ``ref_onset_heard`` (bool per reference note), for clips cut from a recording: a note cut by
    the clip start has no audible onset; it is left out of the reference, and so is any estimated
    note of its pitch that starts before it ends (the network sometimes calls the cut note's
    first loud frames, or its swells, an onset; the score says nothing starts there).
    Empty reference: NaN; empty estimate: 0.
    """
    import mir_eval

    keys = ("note_onset_f1", "note_onset_precision", "note_onset_recall", "note_f1")
    ref_intervals, ref_pitches = reference_notes(ref_intervals, ref_pitches, tuning_cents)
    est_intervals = np.asarray(est.intervals, np.float64).reshape(-1, 2)
    est_pitches = np.asarray(est.pitches, np.float64)
    if ref_onset_heard is not None:
        heard = np.asarray(ref_onset_heard, bool)
        for offset, pitch in zip(ref_intervals[~heard, 1], ref_pitches[~heard]):
            drop = (np.abs(est_pitches - pitch) * 100.0 <= pitch_tolerance_cents) & (
                est_intervals[:, 0] < max(offset, onset_tolerance)
            )
            est_intervals, est_pitches = est_intervals[~drop], est_pitches[~drop]
        ref_intervals, ref_pitches = ref_intervals[heard], ref_pitches[heard]
    if len(ref_pitches) == 0:
        return {k: float("nan") for k in keys}
    if len(est_pitches) == 0:
        return dict.fromkeys(keys, 0.0)
    common = {"onset_tolerance": onset_tolerance, "pitch_tolerance": pitch_tolerance_cents}
    args = (ref_intervals, _hz(ref_pitches), est_intervals, _hz(est_pitches))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = mir_eval.transcription.precision_recall_f1_overlap
        precision, recall, f1, _ = score(*args, offset_ratio=None, **common)
        _, _, f1_offset, _ = score(*args, **common)
    return {
        "note_onset_f1": float(f1),
        "note_onset_precision": float(precision),
        "note_onset_recall": float(recall),
        "note_f1": float(f1_offset),
    }


def reference_notes(intervals, pitches, tuning_cents: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Score notes as ((N, 2) seconds, (N,) MIDI shifted by ``tuning_cents``), checked to match."""
    intervals = np.asarray(intervals, np.float64).reshape(-1, 2)
    pitches = np.asarray(pitches, np.float64).reshape(-1) + tuning_cents / 100.0
    if len(intervals) != len(pitches):
        raise ValueError(f"{len(intervals)} intervals but {len(pitches)} pitches")
    return intervals, pitches


def sounding_pitches(times: np.ndarray, intervals: np.ndarray, pitches: np.ndarray) -> list[np.ndarray]:
    """MIDI pitches of the notes sounding (onset <= t < offset) at each of ``times``."""
    intervals, pitches = reference_notes(intervals, pitches)
    on = (times[:, None] >= intervals[None, :, 0]) & (times[:, None] < intervals[None, :, 1])
    return [np.unique(pitches[row]) for row in on]


def multipitch_accuracy(
    est: Transcription, ref_intervals: np.ndarray, ref_pitches: np.ndarray, tuning_cents: float = 0.0
) -> float:
    """Frame-level multi-pitch Accuracy TP / (TP + FP + FN) (mir_eval.multipitch, 50-cent match)
    on the transcriber's frame grid; NaN when no reference note sounds on the grid."""
    import mir_eval

    times = np.asarray(est.frame_times, np.float64)
    ref = sounding_pitches(times - est.latency_seconds, *reference_notes(ref_intervals, ref_pitches, tuning_cents))
    if not any(len(r) for r in ref):
        return float("nan")
    ref_hz = [_hz(r) for r in ref]
    est_hz = [_hz(e) for e in est.frame_pitches()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = mir_eval.multipitch.metrics(times, ref_hz, times, est_hz)
    return float(scores[2])


# ---------------------------------------------------------------- threshold search


@dataclass
class TuningItem:
    """One clip to tune on: audio and its score notes (seconds, MIDI)."""

    audio: np.ndarray
    sample_rate: int
    ref_intervals: np.ndarray
    ref_pitches: np.ndarray
    tuning_cents: float = 0.0
    ref_onset_heard: np.ndarray | None = None


DEFAULT_GRID = {"onset_threshold": (0.3, 0.4, 0.5, 0.6, 0.7), "frame_threshold": (0.2, 0.3, 0.4, 0.5)}


def tune_thresholds(
    items,
    grid: dict[str, tuple] | None = None,
    transcriber: Transcriber | None = None,
    posteriors: list[Posteriors] | None = None,
) -> tuple[dict, list[dict]]:
    """Grid search of the decoding settings by mean note-onset F1 over ``items``.

    ``items``: TuningItem or (audio, sample_rate, ref_intervals, ref_pitches) tuples. ``grid``:
    values to try per :class:`Decoding` field (fields left out keep the transcriber's setting);
    default: onset threshold x frame threshold. The network runs once per item (or pass
    ``posteriors`` computed earlier); each grid point only re-decodes. Returns (best row, all
    rows); a row holds the Decoding fields and the mean note_onset_f1, note_f1 and multipitch
    accuracy over the items where each is defined. Ties go to the earlier grid point.
    """
    items = [it if isinstance(it, TuningItem) else TuningItem(*it) for it in items]
    transcriber = transcriber or Transcriber()
    grid = dict(DEFAULT_GRID if grid is None else grid)
    unknown = set(grid) - set(Decoding.__dataclass_fields__)
    if unknown:
        raise ValueError(f"not Decoding fields: {', '.join(sorted(unknown))}")
    if posteriors is None:
        posteriors = [transcriber.posteriors(it.audio, it.sample_rate) for it in items]
    if len(posteriors) != len(items):
        raise ValueError(f"{len(posteriors)} posteriors for {len(items)} items")
    rows = []
    multipitch: dict[tuple[float, float], list[float]] = {}  # the frame roll: frame threshold and latency alone
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        decoding = replace(transcriber.decoding, **dict(zip(names, values)))
        roll_key = (decoding.frame_threshold, decoding.latency_seconds)
        if roll_key not in multipitch:
            multipitch[roll_key] = [
                multipitch_accuracy(
                    Transcription(
                        np.zeros((0, 2)), np.zeros(0), post.frame_times, post.note >= roll_key[0], roll_key[1]
                    ),
                    it.ref_intervals,
                    it.ref_pitches,
                    it.tuning_cents,
                )
                for it, post in zip(items, posteriors)
            ]
        scores: dict[str, list[float]] = {"note_onset_f1": [], "note_f1": []}
        for it, post in zip(items, posteriors):
            notes = note_metrics(
                decode_notes(post, decoding),
                it.ref_intervals,
                it.ref_pitches,
                it.tuning_cents,
                ref_onset_heard=it.ref_onset_heard,
            )
            scores["note_onset_f1"].append(notes["note_onset_f1"])
            scores["note_f1"].append(notes["note_f1"])
        scores["multipitch_accuracy"] = multipitch[roll_key]
        rows.append(asdict(decoding) | {k: _nanmean(v) for k, v in scores.items()})
    best = max(rows, key=lambda r: -np.inf if np.isnan(r["note_onset_f1"]) else r["note_onset_f1"])
    return best, rows


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
