"""Stage `align`: DTW-align every score to its 16 kHz recording; score it against the reference.

Outputs one CSV per recording (onset, offset in seconds; onset_frame, offset_frame at the mel hop; each
note's alignment confidence), every DTW-aligned recording's confidence (confidence.json), every
recording's timing source (sources.json), the onset-error metrics with the confidences (and the
recordings under align.min_confidence) and the error CDF. For a recording with audio the reference
alignment is read only for scoring; an annotation-only recording's alignment is its reference (not
DTW-aligned, not scored: the metrics count how many of each).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.alignment.corpus import align_corpus, confidence_summary, score_alignments, summary
from pipeline.config import Params
from pipeline.datasets.confidence import low_confidence
from pipeline.datasets.layout import read_manifest
from pipeline.io import atomic_dir, atomic_path, write_json
from stages._common import stage_main


def run(params: Params, raw: Path, audio: Path, out: Path, metrics: Path, plot: Path) -> None:
    recordings = read_manifest(audio)
    with atomic_dir(out) as tmp:
        confidence = align_corpus(recordings, raw, audio, params.align, params.mel, tmp)
        scores, cdf = score_alignments(recordings, raw, tmp)
    scores["confidence"] = confidence
    scores["low_confidence"] = low_confidence(confidence, params.align.min_confidence)
    write_json(metrics, scores)
    with atomic_path(plot) as tmp_plot:
        cdf.to_csv(tmp_plot, index=False)
    line = summary(scores)
    print(
        f"align: {len(recordings)} recordings in {out}: {scores['dtw_aligned']} DTW-aligned"
        + (f" ({line})" if line else "")
        + f", {scores['reference_timing']} annotation-only with their reference timing"
    )
    print(f"align: {confidence_summary(confidence, params.align.min_confidence)}")


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {
            "raw": "input: the prepare stage's raw corpus (scores, reference alignments)",
            "audio": "input: the resample stage's 16 kHz audio folder",
            "out": "output: the alignments folder (<id>.csv)",
            "metrics": "output: onset error statistics against the references, alignment confidences (JSON)",
            "plot": "output: the onset error CDF (CSV)",
        },
    )
