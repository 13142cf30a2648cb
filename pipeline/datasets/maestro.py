"""MAESTRO v3.0.0 (piano performances with aligned MIDI) in the normalised layout.

The extracted archive holds ``maestro-v3.0.0/`` with ``maestro-v3.0.0.csv`` (columns
canonical_composer, canonical_title, split, year, midi_filename, audio_filename, duration) and
year folders of ``.midi`` and ``.wav`` files. The MIDI was captured from the same performance
as the audio (Disklavier), so it is both the score and the reference alignment: the notes
are the MIDI notes at 24 ticks per quarter, the reference their exact times in seconds.

Each recording ``<midi stem>`` gets: audio converted to 16-bit FLAC at its own rate, mixed to
mono (as for the Bach Violin Dataset); ``performer`` = the competition year (the paper's
performer id); ``piece`` = ``<canonical_title>/<file stem>``. Only the full release works:
the MIDI-only zip has no audio to learn from.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.config import DataConfig
from pipeline.datasets.cutting import Cut, cut_to_flac
from pipeline.datasets.download import fetch_archive
from pipeline.datasets.layout import Recording, write_manifest, write_reference
from pipeline.errors import PipelineError
from pipeline.scores import midi_notes_and_times, tick_seconds  # noqa: F401  (tick_seconds: MAESTRO's reader's)

SOURCE = "maestro"
SPLITS = ("train", "validation", "test")
CSV_COLUMNS = ("canonical_title", "split", "year", "midi_filename", "audio_filename")


def find_maestro_csv(root: Path) -> Path:
    """The ``maestro-v*.csv`` in ``root`` or one or two folders below it."""
    root = Path(root)
    if not root.is_dir():
        raise PipelineError("dataset folder not found", root)
    for pattern in ("maestro-v*.csv", "*/maestro-v*.csv", "*/*/maestro-v*.csv"):
        found = sorted(root.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise PipelineError(f"several MAESTRO tables here ({', '.join(p.name for p in found)}): point at one", root)
    raise PipelineError("no maestro-v*.csv in this folder or the ones below it (not an extracted MAESTRO?)", root)


def _select(frame: pd.DataFrame, config: DataConfig, csv_path: Path) -> pd.DataFrame:
    splits = config.maestro.splits
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise PipelineError(
            f"data.maestro.splits: unknown split(s) {', '.join(unknown)} (expected {', '.join(SPLITS)})"
        )
    frame = frame[frame["split"].isin(splits)]
    if config.maestro.max_recordings is not None:
        frame = frame.head(config.maestro.max_recordings)
    if frame.empty:
        raise PipelineError(f"no recording in split(s) {', '.join(splits)}", csv_path)
    return frame


def prepare_maestro(config: DataConfig, out: Path) -> list[Recording]:
    """Write MAESTRO into ``out`` in the normalised layout; returns its manifest rows."""
    mc = config.maestro
    out = Path(out)
    if config.root:
        csv_path = find_maestro_csv(Path(config.root))
    else:
        if mc.url.lower().endswith("-midi.zip"):
            raise PipelineError(
                f"data.maestro.url is the MIDI-only release ({mc.url}): this pipeline learns from audio, "
                "use the full release (maestro-v3.0.0.zip) or data.root"
            )
        csv_path = find_maestro_csv(fetch_archive(mc.url, Path(config.download_dir), sha256=mc.sha256))
    root = csv_path.parent
    try:
        table = pd.read_csv(csv_path, dtype={"year": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PipelineError(f"cannot read the MAESTRO table ({err})", csv_path) from err
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise PipelineError(f"MAESTRO table lacks column(s) {', '.join(missing)}", csv_path)
    rows = _select(table, config, csv_path).to_dict("records")

    for row in rows:  # check everything exists before converting hours of audio
        row["year"] = str(row["year"]).strip()
        row["midi_path"] = root / str(row["midi_filename"])
        row["audio_path"] = root / str(row["audio_filename"])
        row["id"] = Path(str(row["midi_filename"])).stem
        if not row["midi_path"].is_file():
            raise PipelineError("MIDI file not found (named by the MAESTRO table)", row["midi_path"])
        if not row["audio_path"].is_file():
            raise PipelineError(
                "audio file not found (named by the MAESTRO table; the MIDI-only release has no audio, "
                "and this pipeline needs it)",
                row["audio_path"],
            )
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise PipelineError(f"two recordings share the file name {duplicate}", csv_path)

    for sub in ("audio", "notes", "reference"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    years = sorted({row["year"] for row in rows})
    recordings = []
    for row in tqdm(rows, desc="read maestro", unit="rec"):
        rec_id = row["id"]
        notes, onset, offset = midi_notes_and_times(row["midi_path"])
        cut_to_flac(row["audio_path"], [Cut(rec_id, 0.0, None, out / "audio" / f"{rec_id}.flac")])
        notes.to_csv(out / "notes" / f"{rec_id}.csv")
        write_reference(out / "reference" / f"{rec_id}.csv", onset, offset)
        span = float(onset.max() - onset.min())
        beats = float(notes.onset.max() - notes.onset.min()) / notes.resolution
        recordings.append(
            Recording(
                id=rec_id,
                piece=f"{row['canonical_title']}/{rec_id}",
                performer=row["year"],
                performer_id=years.index(row["year"]),
                audio=f"audio/{rec_id}.flac",
                notes=f"notes/{rec_id}.csv",
                reference=f"reference/{rec_id}.csv",
                tempo_qpm=round(60.0 * beats / span, 3) if beats > 0 and span > 0 else notes.tempo_qpm,
                polyphonic=notes.is_polyphonic,
                source=SOURCE,
            )
        )
    write_manifest(out, recordings)
    return recordings
