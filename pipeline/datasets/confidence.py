"""The alignments' per-recording confidence and source files, written by the align stage and read by the
mel stage.

``<alignments>/confidence.json``: ``{"<id>": confidence, ...}`` in [0, 1] (1 = confident; how it is
computed: pipeline/alignment/confidence.py) for every DTW-aligned recording (those with audio).
Recordings under ``align.min_confidence`` are left out of training by the mel stage, which lists them
in ``<features>/left_out.csv`` (read by the evaluate report).

``<alignments>/sources.json``: ``{"<id>": "dtw" | "reference", ...}`` for every recording: ``reference``
for an annotation-only recording, whose alignment is the dataset's own note timing (no DTW, no
confidence; never left out for confidence).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

CONFIDENCE_FILE = "confidence.json"  # in the alignments folder
SOURCES_FILE = "sources.json"  # in the alignments folder
DTW, REFERENCE = "dtw", "reference"  # a recording's timing source: DTW against its audio | its reference
LEFT_OUT_FILE = "left_out.csv"  # in the features folder
LEFT_OUT_COLUMNS = ["id", "piece", "performer", "confidence", "reason"]
LOW_CONFIDENCE = "low alignment confidence"  # the reason of a recording left out under align.min_confidence


def write_confidence(alignments: Path, confidence: dict[str, float]) -> None:
    with atomic_path(Path(alignments) / CONFIDENCE_FILE) as tmp:
        tmp.write_text(json.dumps({k: round(float(v), 4) for k, v in confidence.items()}, indent=1) + "\n")


def read_confidence(alignments: Path) -> dict[str, float]:
    """Recording id -> confidence; an error naming the file when it is missing."""
    path = Path(alignments) / CONFIDENCE_FILE
    if not path.is_file():
        raise PipelineError("alignment confidence not found (re-run the align stage)", path)
    return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}


def write_sources(alignments: Path, sources: dict[str, str]) -> None:
    with atomic_path(Path(alignments) / SOURCES_FILE) as tmp:
        tmp.write_text(json.dumps(sources, indent=1) + "\n")


def read_sources(alignments: Path) -> dict[str, str]:
    """Recording id -> ``dtw`` | ``reference``; an error naming the file when it is missing."""
    path = Path(alignments) / SOURCES_FILE
    if not path.is_file():
        raise PipelineError("alignment sources not found (re-run the align stage)", path)
    return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}


def low_confidence(confidence: dict[str, float], min_confidence: float) -> list[str]:
    """Ids under ``min_confidence``, in the order given."""
    return [k for k, v in confidence.items() if v < min_confidence]


def read_left_out(features: Path) -> pd.DataFrame:
    """The recordings the mel stage left out (columns ``LEFT_OUT_COLUMNS``); empty when the file is absent."""
    path = Path(features) / LEFT_OUT_FILE
    if not path.is_file():
        return pd.DataFrame(columns=LEFT_OUT_COLUMNS)
    return pd.read_csv(path, dtype={"id": str, "piece": str, "performer": str}, keep_default_na=False)
