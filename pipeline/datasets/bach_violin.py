"""The Bach Violin Dataset v1.0 (17 violinists, 105 movements) in the normalised layout.

The released archive holds ``bach-violin/`` with (see tests/fixtures/bach-violin-sample/README.md):

    info.csv                              one row per movement: cut points into its source recording
    audio/<collection>/<source_filename>  the source recordings (MP3 or Opus); absent for some collections
    scores/<work>/<score_filename>.mxl    reference scores
    notes/<collection>/<filename>.csv     onset,offset,pitch,velocity in ticks (24 per quarter note)
    alignments/<collection>/<filename>.csv  start,end in seconds, one row per note (same order)
    tempos/<collection>/<filename>.txt    average tempo in quarter notes per minute

Each selected movement becomes one recording ``<filename>``. Where its source audio is in the
archive, the audio is cut from the source between info.csv's ``start`` and ``end`` and written as
16-bit FLAC at the source's own sample rate, mixed to mono (every later stage reads mono; this halves
the size). A movement whose source audio is missing (the release ships only YouTube ids for some
collections) is kept **annotation-only**: its notes and the dataset's note alignment (real human
timing, ``reference/<id>.csv``) with manifest ``audio`` = "" (pipeline/datasets/layout.py). Baroque-pitch
recordings (``baroque_tuning == 1``, about A=415) keep their untransposed notes and get ``tuning_cents=-100``.

The piece (the manifest's ``piece``, the split's unit) is the movement: ``score_filename`` without the
repeat-variant suffix (``bwv1002_mov7_10`` and ``bwv1002_mov7_00`` are bwv1002_mov7 played with other
repeats, the same music: a test piece must not be heard in training under another score name).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.config import TICKS_PER_QUARTER, DataConfig
from pipeline.datasets.cutting import Cut, cut_to_flac, parse_clock
from pipeline.datasets.download import fetch_archive, find_dataset_root
from pipeline.datasets.layout import Recording, write_manifest, write_reference
from pipeline.errors import PipelineError
from pipeline.scores import NoteTable

SOURCE = "bach-violin"
INFO_COLUMNS = (
    "filename",
    "collection",
    "violinist",
    "work",
    "source_filename",
    "start",
    "end",
    "score_filename",
    "baroque_tuning",
)
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml")
MIN_NOTE_SECONDS = 0.032  # one alignment frame: the floor for notes whose end is not after their start
REPEAT_VARIANT = re.compile(r"^(?P<movement>.+_mov\d+)_\d\d$")  # bwv1002_mov7_10: repeats 1 and 0 of bwv1002_mov7


def piece_of(score_filename: str) -> str:
    """The movement a score file is a version of (``bwv1002_mov7_10`` -> ``bwv1002_mov7``)."""
    match = REPEAT_VARIANT.match(score_filename)
    return match["movement"] if match else score_filename


def _read_csv(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise PipelineError(f"{what} not found (named by info.csv)", path)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PipelineError(f"cannot read {what} ({err})", path) from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PipelineError(f"{what} lacks column(s) {', '.join(missing)}", path)
    return frame


def _read_tempo(path: Path) -> float:
    if not path.is_file():
        raise PipelineError("tempo file not found (named by info.csv)", path)
    try:
        tempo = float(path.read_text().split()[0])
    except (ValueError, IndexError) as err:
        raise PipelineError("tempo file must hold one number (quarter notes per minute)", path) from err
    if not np.isfinite(tempo) or tempo <= 0:
        raise PipelineError(f"tempo must be positive, not {tempo}", path)
    return tempo


def _find_score(root: Path, work: str, score_filename: str) -> Path:
    folder = root / "scores" / work.lower()
    for suffix in SCORE_SUFFIXES:
        if (folder / f"{score_filename}{suffix}").is_file():
            return folder / f"{score_filename}{suffix}"
    for suffix in SCORE_SUFFIXES:  # some other folder layout: look anywhere under scores/
        hits = sorted((root / "scores").glob(f"**/{score_filename}{suffix}"))
        if hits:
            return hits[0]
    raise PipelineError("score not found (named by info.csv)", folder / f"{score_filename}.mxl")


def read_movement(root: Path, row: dict) -> tuple[NoteTable, np.ndarray, np.ndarray]:
    """Notes (sorted by onset, pitch) and their reference onset/offset seconds (same order)."""
    collection, name = row["collection"], row["filename"]
    _find_score(root, row["work"], row["score_filename"])  # must exist, even if the notes file is what we read
    notes_path = root / "notes" / collection / f"{name}.csv"
    align_path = root / "alignments" / collection / f"{name}.csv"
    notes = _read_csv(notes_path, ("onset", "offset", "pitch", "velocity"), "notes file")
    align = _read_csv(align_path, ("start", "end"), "alignment file")
    tempo = _read_tempo(root / "tempos" / collection / f"{name}.txt")
    if len(notes) == 0:
        raise PipelineError("notes file holds no notes", notes_path)
    if len(notes) != len(align):
        raise PipelineError(f"alignment has {len(align)} rows but the notes file has {len(notes)}", align_path)
    if notes[["onset", "offset", "pitch", "velocity"]].isna().any(axis=None):
        raise PipelineError("notes file has empty cells", notes_path)
    try:
        onset = notes["onset"].to_numpy(np.int64)
        duration = np.maximum(notes["offset"].to_numpy(np.int64) - onset, 1)
        table = NoteTable(
            onset,
            duration,
            notes["pitch"].to_numpy(np.int64),
            notes["velocity"].to_numpy(np.int64),
            np.zeros(len(notes), np.int64),
            tempo_qpm=tempo,
            resolution=TICKS_PER_QUARTER,
            name=name,
        )
    except (ValueError, TypeError) as err:
        raise PipelineError(f"notes must be integers ({err})", notes_path) from err
    start = align["start"].to_numpy(float)
    end = align["end"].to_numpy(float)
    if not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise PipelineError("alignment has empty or non-numeric times", align_path)
    end = np.where(end <= start, start + MIN_NOTE_SECONDS, end)
    order = np.lexsort((table.pitch, table.onset))  # the NoteTable order; the reference follows it
    return table.subset(order), start[order], end[order]


def _select(info: pd.DataFrame, config: DataConfig, info_path: Path) -> pd.DataFrame:
    wanted = config.bach_violin.collections
    if wanted:
        known = sorted(info["collection"].unique())
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise PipelineError(
                f"data.bach_violin.collections: unknown collection(s) {', '.join(unknown)} "
                f"(info.csv has {', '.join(known)})",
                info_path,
            )
        info = info[info["collection"].isin(wanted)]
    return info


def prepare_bach_violin(config: DataConfig, out: Path) -> list[Recording]:
    """Write the Bach Violin Dataset into ``out`` in the normalised layout; returns its manifest rows."""
    bv = config.bach_violin
    out = Path(out)
    if config.root:
        root = find_dataset_root(Path(config.root), "info.csv")
    else:
        root = find_dataset_root(fetch_archive(bv.url, Path(config.download_dir), md5=bv.md5), "info.csv")
    info_path = root / "info.csv"
    info = _read_csv(info_path, INFO_COLUMNS, "movement table")
    info = _select(info.astype({c: str for c in INFO_COLUMNS if c != "baroque_tuning"}), config, info_path)
    repeated = info["filename"][info["filename"].duplicated()].unique()
    if len(repeated):
        raise PipelineError(f"movement(s) listed twice: {', '.join(repeated)}", info_path)

    # Plan: every selected movement in info.csv order, up to max_movements; those whose source audio
    # exists are cut, the others are annotation-only (notes and the dataset's human timing, no sound)
    plan: list[dict] = []
    for row in info.to_dict("records"):
        if bv.max_movements is not None and len(plan) >= bv.max_movements:
            break
        source = root / "audio" / row["collection"] / row["source_filename"]
        row["source"] = source if source.is_file() else None
        if row["source"] is not None:
            where = f"movement {row['filename']}"
            row["start_s"] = parse_clock(row["start"], f"{where} start", info_path)
            row["end_s"] = parse_clock(row["end"], f"{where} end", info_path)
            if row["end_s"] <= row["start_s"]:
                raise PipelineError(f"{where}: end {row['end']} is not after start {row['start']}", info_path)
        plan.append(row)
    if not plan:
        raise PipelineError("no movement to read: the selection (data.bach_violin) holds none", info_path)
    if all(row["source"] is None for row in plan):
        missing = [f"audio/{r['collection']}/{r['source_filename']}" for r in plan]
        raise PipelineError(
            f"none of the {len(plan)} selected movement(s) has its audio ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): the synthesis stages need some recordings with sound "
            "(data.bach_violin.collections / max_movements)",
            root,
        )

    # Read every note table first: a broken file fails before the long audio work starts
    movements = {row["filename"]: read_movement(root, row) for row in plan}
    for sub in ("audio", "notes", "reference"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    by_source: dict[Path, list[dict]] = {}
    for row in (r for r in plan if r["source"] is not None):
        by_source.setdefault(row["source"], []).append(row)
    for source, rows in tqdm(by_source.items(), desc="cut bach-violin movements", unit="recording"):
        cuts = [Cut(r["filename"], r["start_s"], r["end_s"], out / "audio" / f"{r['filename']}.flac") for r in rows]
        cut_to_flac(source, cuts)

    violinists = sorted({row["violinist"] for row in plan})
    recordings = []
    for row in plan:
        name = row["filename"]
        notes, onset, offset = movements[name]
        notes.to_csv(out / "notes" / f"{name}.csv")
        write_reference(out / "reference" / f"{name}.csv", onset, offset)
        try:
            baroque = int(float(row["baroque_tuning"])) == 1
        except (TypeError, ValueError):
            baroque = False
        recordings.append(
            Recording(
                id=name,
                piece=piece_of(row["score_filename"]),
                performer=row["violinist"],
                performer_id=violinists.index(row["violinist"]),
                audio=f"audio/{name}.flac" if row["source"] is not None else "",
                notes=f"notes/{name}.csv",
                reference=f"reference/{name}.csv",
                tempo_qpm=round(notes.tempo_qpm, 3),
                polyphonic=notes.is_polyphonic,
                tuning_cents=-100.0 if baroque else 0.0,
                source=SOURCE,
            )
        )
    write_manifest(out, recordings)
    return recordings
