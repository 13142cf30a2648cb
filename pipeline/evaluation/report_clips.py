"""What the listening report shows of the evaluation: which test clips (:func:`report_choice`) and, per
clip, every system's audio and mel with its scores on that clip (:func:`report_clips`); the page itself
is :mod:`pipeline.evaluation.report`'s."""

from __future__ import annotations

import pandas as pd

from pipeline.config import MelConfig
from pipeline.datasets.clips import ClipDataset
from pipeline.evaluation.report import ReportClip
from pipeline.evaluation.rows import CEILING
from pipeline.evaluation.scoring import Scores, clip_id
from pipeline.evaluation.systems import ClipOutput
from pipeline.mel import log_mel

# shown on each card: score following (are these the score's notes?) and the pitch of the single notes
REPORT_SCORES = {"note_onset_f1": "score-following note-onset F1", "raw_pitch_accuracy": "raw pitch"}


def report_choice(clips: ClipDataset, order: list[int], index: pd.DataFrame, count: int) -> list[int]:
    """``count`` clips of ``order`` for the listening report, taken from each test piece in turn (the
    first clip of each piece, then the second, ...), so the report plays every kind of test material,
    not ``count`` neighbouring clips of one recording."""
    piece_of = dict(zip(index["id"].astype(str), index["piece"].astype(str)))
    by_piece: dict[str, list[int]] = {}
    for i in order:
        by_piece.setdefault(piece_of.get(clips.refs[i].recording, ""), []).append(i)
    queues = [by_piece[p] for p in sorted(by_piece)]
    chosen: list[int] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        chosen += [q[rank] for q in queues if rank < len(q)]
    return chosen[:count]


def report_clips(
    clips: ClipDataset,
    chosen: list[int],
    kept: dict,
    polyphonic: dict,
    mel_config: MelConfig,
    scores: Scores | None = None,
) -> list[ReportClip]:
    """The report's clips: every system's audio beside its own mel (or, without one, its audio's mel),
    with its scores on this clip (:data:`REPORT_SCORES`, from ``scores``); the recording's card first."""
    out = []
    seconds_per_frame = mel_config.hop_length / mel_config.sample_rate
    for i in chosen:
        ref = clips.refs[i]
        item = clips[i]
        cid = clip_id(ref)
        outputs = {
            name: ClipOutput(
                audio=result.audio, mel=result.mel if result.mel is not None else log_mel(result.audio, mel_config)
            )
            for name, result in kept.get(cid, {}).items()
        }
        order = [CEILING] + [n for n in outputs if n != CEILING]
        out.append(
            ReportClip(
                id=cid,
                title=f"{ref.recording}, from {ref.start * seconds_per_frame:.1f} s"
                f"{' (polyphonic)' if polyphonic[ref.recording] else ''}",
                pitch=item["pitch"],
                onset_frame=item["onset_frame"],
                offset_frame=item["offset_frame"],
                outputs={n: outputs[n] for n in order if n in outputs},
                reference=CEILING if CEILING in outputs else None,
                scores={
                    n: {
                        label: scores.values[n][metric][cid]
                        for metric, label in REPORT_SCORES.items()
                        if cid in scores.values[n].get(metric, {})
                    }
                    for n in order
                    if scores is not None and n in outputs
                },
            )
        )
    return out
