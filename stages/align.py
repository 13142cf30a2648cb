"""Stage `align`: DTW-align every score to its 16 kHz recording; score it against the reference.

Outputs one CSV per recording (onset, offset in seconds; onset_frame, offset_frame at the mel hop),
the onset-error metrics and their CDF. The reference alignment is read only for scoring.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.alignment.corpus import align_corpus, score_alignments, summary
from pipeline.config import Params
from pipeline.datasets.layout import read_manifest
from pipeline.io import atomic_dir, atomic_path, write_json
from stages._common import stage_main


def run(params: Params, raw: Path, audio: Path, out: Path, metrics: Path, plot: Path) -> None:
    recordings = read_manifest(audio)
    with atomic_dir(out) as tmp:
        align_corpus(recordings, raw, audio, params.align, params.mel, tmp)
        scores, cdf = score_alignments(recordings, raw, tmp)
    write_json(metrics, scores)
    with atomic_path(plot) as tmp_plot:
        cdf.to_csv(tmp_plot, index=False)
    line = summary(scores)
    print(f"align: {len(recordings)} recordings in {out}" + (f" ({line})" if line else ""))


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {
            "raw": "input: the prepare stage's raw corpus (scores, reference alignments)",
            "audio": "input: the resample stage's 16 kHz audio folder",
            "out": "output: the alignments folder (<id>.csv)",
            "metrics": "output: onset error statistics against the references (JSON)",
            "plot": "output: the onset error CDF (CSV)",
        },
    )
