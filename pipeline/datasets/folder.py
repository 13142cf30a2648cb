"""Your own recordings: a folder of recordings and their scores, in the normalised layout.

``data.source: folder`` reads ``data.root``::

    <root>/<performer>/<piece>.<wav|flac|mp3|ogg|opus|m4a>   one recording of <piece> by <performer>
    <root>/scores/<piece>.<mid|midi|musicxml|xml|mxl>      the score every performer of <piece> played
    <root>/pieces.csv                                      optional, one row per piece (below)

``pieces.csv`` columns (only ``piece`` is required; an empty cell keeps the default). A row holds for
every recording of its piece, or, with ``performer`` set, for that performer's recording only (which
then wins over the piece's row):

    piece    the file stem shared by the score and its recordings
    performer    optional: the row is for this performer's recording of the piece
    tempo    the average performed tempo, quarter notes per minute (default: the score's beats over
             the recording's sounding length)
    tuning   cents of the recording against the written pitch (e.g. -100 for A=415 with the notes
             left untransposed; default 0)
    start, end   the part of each recording to keep, in seconds or H:MM:SS (default: all of it)
    program  the General MIDI program (0-127) of the instrument, for the alignment's reference
             rendering (default: params ``align.program``; 40 violin, 42 cello, 73 flute, 0 piano,
             52 voice)

Each recording becomes ``<piece>__<performer>``, its audio 16-bit FLAC at its own rate (mono),
its notes the score's. Performer ids follow the performers' sorted names. There is no reference
alignment: the ``align`` stage makes one (and flags recordings it could not align). Faults are
one-line errors naming the file: a recording without a score, a score without notes, an unreadable
file, a piece or performer name that is not a safe file name, two files for the same recording.
Scores that nobody recorded are listed in one warning.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.audio import check_audio, load_audio
from pipeline.datasets.cutting import Cut, cut_to_flac, parse_clock
from pipeline.datasets.layout import Recording, write_manifest
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable, read_score

SOURCE = "folder"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
SCORE_SUFFIXES = (".mid", ".midi", ".musicxml", ".xml", ".mxl")
PIECES_COLUMNS = ("piece", "performer", "tempo", "tuning", "start", "end", "program")
SCORES_FOLDER = "scores"
# a name that is a file stem on every system, and never splits the recording id <piece>__<performer>
SAFE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]|_(?!_))*")
SOUNDING_DB = 40.0  # the sounding length (for the default tempo): frames within this of the loudest


class UnrecordedScoresWarning(UserWarning):
    """Scores in ``scores/`` that no performer's folder holds a recording of."""


@dataclass(frozen=True)
class PieceSettings:
    tempo: float | None = None
    tuning: float = 0.0
    start: float = 0.0
    end: float | None = None
    program: int = -1  # -1: params align.program


def _check_name(name: str, what: str, path: Path) -> str:
    if not SAFE_NAME.fullmatch(name):
        raise PipelineError(
            f"{what} name {name!r} is not a safe file name (letters, digits, '.', '-', single '_')", path
        )
    return name


def _one_per_stem(files: list[Path], what: str) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in sorted(files):
        if path.stem in by_stem:
            raise PipelineError(f"two files for the same {what} ({by_stem[path.stem].name} and {path.name})", path)
        by_stem[path.stem] = path
    return by_stem


def _number(value: object, column: str, piece: str, path: Path) -> float | None:
    text = str(value).strip()
    if text in ("", "nan"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise PipelineError(f"piece {piece!r}: {column} {text!r} is not a number", path) from None
    if not np.isfinite(number):
        raise PipelineError(f"piece {piece!r}: {column} must be finite, not {text}", path)
    return number


def read_pieces(path: Path) -> dict[tuple[str, str], PieceSettings]:
    """``pieces.csv`` (see the module docstring) -> settings per (piece, performer or "")."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PipelineError(f"not a readable CSV file ({err})", path) from err
    unknown = [c for c in frame.columns if c not in PIECES_COLUMNS]
    if "piece" not in frame.columns or unknown:
        raise PipelineError(
            f"columns must be piece and any of {', '.join(PIECES_COLUMNS[1:])}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else " (no piece column)"),
            path,
        )
    settings: dict[tuple[str, str], PieceSettings] = {}
    for row in frame.to_dict("records"):
        piece = _check_name(str(row["piece"]).strip(), "piece", path)
        performer = str(row.get("performer", "")).strip()
        if performer:
            _check_name(performer, "performer", path)
        if (piece, performer) in settings:
            raise PipelineError(f"piece {piece!r}{f' by {performer}' if performer else ''} is listed twice", path)
        tempo = _number(row.get("tempo", ""), "tempo", piece, path)
        if tempo is not None and tempo <= 0:
            raise PipelineError(f"piece {piece!r}: tempo must be > 0, not {tempo:g}", path)
        program = _number(row.get("program", ""), "program", piece, path)
        if program is not None and (program != int(program) or not 0 <= program <= 127):
            raise PipelineError(f"piece {piece!r}: program must be a General MIDI program 0-127, not {program:g}", path)
        start_text, end_text = str(row.get("start", "")).strip(), str(row.get("end", "")).strip()
        start = parse_clock(start_text, f"piece {piece!r} start", path) if start_text else 0.0
        end = parse_clock(end_text, f"piece {piece!r} end", path) if end_text else None
        if end is not None and end <= start:
            raise PipelineError(f"piece {piece!r}: end {end:g} s is not after start {start:g} s", path)
        settings[piece, performer] = PieceSettings(
            tempo=tempo,
            tuning=_number(row.get("tuning", ""), "tuning", piece, path) or 0.0,
            start=start,
            end=end,
            program=-1 if program is None else int(program),
        )
    return settings


def _sounding_seconds(path: Path, source: Path) -> float:
    """Length of the part of recording ``path`` (cut from ``source``) within SOUNDING_DB of its loudest
    50 ms frame; a PipelineError naming ``source`` if it is silent."""
    audio, rate = load_audio(path, validate=False)
    check_audio(audio, rate, source)
    hop = max(1, rate // 20)
    frames = len(audio) // hop
    if frames == 0:
        return len(audio) / rate
    power = (audio[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2).mean(axis=1)
    level = 10 * np.log10(power + 1e-12)
    loud = np.flatnonzero(level > level.max() - SOUNDING_DB)
    return (loud[-1] - loud[0] + 1) * hop / rate


def _read_notes(score: Path) -> NoteTable:
    notes = read_score(score)
    if len(notes) == 0:
        raise PipelineError("score holds no notes", score)
    return notes


def prepare_folder(root: str | None, out: Path) -> list[Recording]:
    """Read the folder ``root`` (see the module docstring) into ``out`` in the normalised layout."""
    if not root:
        raise PipelineError("data.root must name the folder of your recordings when data.source is folder")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise PipelineError("recordings folder not found (params data.root)", base)
    scores_dir = base / SCORES_FOLDER
    if not scores_dir.is_dir():
        raise PipelineError(f"no {SCORES_FOLDER}/ folder of scores (<root>/{SCORES_FOLDER}/<piece>.mid)", base)
    scores = _one_per_stem([p for p in scores_dir.iterdir() if p.suffix.lower() in SCORE_SUFFIXES], "score")
    for piece, path in scores.items():
        _check_name(piece, "piece", path)
    settings = read_pieces(base / "pieces.csv") if (base / "pieces.csv").is_file() else {}
    for piece, _ in settings:
        if piece not in scores:
            raise PipelineError(f"piece {piece!r} has no score in {SCORES_FOLDER}/", base / "pieces.csv")

    performers = sorted(p for p in base.iterdir() if p.is_dir() and p.name != SCORES_FOLDER and p.name[0] not in "._")
    plan: list[tuple[str, str, Path]] = []  # (piece, performer, audio file)
    for folder in performers:
        performer = _check_name(folder.name, "performer", folder)
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        for piece, audio in _one_per_stem(files, "recording").items():
            _check_name(piece, "piece", audio)
            if piece not in scores:
                raise PipelineError(
                    f"no score for this recording (expected {SCORES_FOLDER}/{piece}.mid or .musicxml)", audio
                )
            plan.append((piece, performer, audio))
    if not plan:
        raise PipelineError(
            f"no recordings (<root>/<performer>/<piece>.{'|'.join(s[1:] for s in AUDIO_SUFFIXES)})", base
        )
    played = {(piece, performer) for piece, performer, _ in plan}
    for piece, performer in settings:
        if performer and (piece, performer) not in played:
            raise PipelineError(f"piece {piece!r} by {performer}: no such recording", base / "pieces.csv")
    unrecorded = sorted(set(scores) - {piece for piece, _, _ in plan})
    if unrecorded:
        warnings.warn(
            f"{len(unrecorded)} score(s) in {scores_dir} have no recording: {', '.join(unrecorded)}",
            UnrecordedScoresWarning,
            stacklevel=2,
        )

    performer_ids = {name: i for i, name in enumerate(sorted({performer for _, performer, _ in plan}))}
    for sub in ("audio", "notes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    notes_of = {piece: _read_notes(scores[piece]) for piece in sorted({piece for piece, _, _ in plan})}
    recordings = []
    for piece, performer, audio in tqdm(plan, desc="read recordings", unit="rec"):
        rec_id = f"{piece}__{performer}"
        piece_settings = settings.get((piece, performer)) or settings.get((piece, ""), PieceSettings())
        notes = notes_of[piece]
        flac = out / "audio" / f"{rec_id}.flac"
        cut_to_flac(audio, [Cut(rec_id, piece_settings.start, piece_settings.end, flac)])
        notes.to_csv(out / "notes" / f"{rec_id}.csv")
        sounding = _sounding_seconds(flac, audio)  # also checks the recording (not silent)
        tempo = piece_settings.tempo
        if tempo is None:
            beats = (notes.length_ticks - int(notes.onset.min())) / notes.resolution
            tempo = round(60.0 * beats / max(sounding, 1e-3), 3)
        recordings.append(
            Recording(
                id=rec_id,
                piece=piece,
                performer=performer,
                performer_id=performer_ids[performer],
                audio=f"audio/{rec_id}.flac",
                notes=f"notes/{rec_id}.csv",
                reference="",
                tempo_qpm=tempo,
                polyphonic=notes.is_polyphonic,
                tuning_cents=piece_settings.tuning,
                source=SOURCE,
                program=piece_settings.program,
            )
        )
    write_manifest(out, recordings)
    return recordings
