"""Stage `mel`: log-mel spectrogram and frame-level note data of every recording.

Writes the features folder (<id>.npz, index.csv, left_out.csv: the recordings aligned with less than
align.min_confidence, left out of training with a warning), corpus statistics and an example picture (a
log-mel with the aligned notes on top). Annotation-only recordings get their notes and reference timing
without a mel (index.csv ``has_audio`` false); the statistics and the picture are of audio only.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.datasets.featurize import featurize_corpus
from pipeline.datasets.layout import read_manifest
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, write_json
from stages._common import stage_main


def run(params: Params, raw: Path, audio: Path, alignments: Path, out: Path, metrics: Path, picture: Path) -> None:
    if params.mel.sample_rate != params.resample.sample_rate:
        raise PipelineError(
            f"mel.sample_rate ({params.mel.sample_rate}) must equal resample.sample_rate ({params.resample.sample_rate})"
        )
    recordings = read_manifest(audio)
    with atomic_dir(out) as tmp:
        stats = featurize_corpus(
            recordings, raw, audio, alignments, params.mel, tmp, params.align.min_confidence, picture
        )
    write_json(metrics, stats)
    print(
        f"mel: {stats['recordings']} recordings in {out}: {stats['with_audio']} with audio, {stats['frames']} frames "
        f"({stats['hours'] * 60:.1f} min); {stats['annotation_only']} annotation-only (notes and timing, no mel)"
    )
    if stats["left_out"]:
        print(
            f"warning: {len(stats['left_out'])} recording(s) left out of training, alignment confidence under "
            f"align.min_confidence {params.align.min_confidence:g}: {', '.join(stats['left_out'])}"
        )


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {
            "raw": "input: the prepare stage's raw corpus (scores)",
            "audio": "input: the resample stage's 16 kHz audio folder",
            "alignments": "input: the align stage's alignments (and their confidence)",
            "out": "output: the features folder",
            "metrics": "output: corpus statistics (JSON)",
            "picture": "output: an example log-mel with its notes (PNG)",
        },
    )
