import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.performers import PERFORMERS, get_performer
from pipeline.scores import NoteTable


def melody(n=64):
    onset = np.arange(n) * 12  # eighth notes
    return NoteTable(
        onset, np.full(n, 12), 60 + (np.arange(n) * 5) % 24, np.full(n, 80), np.zeros(n), tempo_qpm=100, name="melody"
    )


def test_same_seed_same_performance_other_seed_other_performance():
    p = get_performer("aurora")
    a, b, c = p.perform(melody(), seed=1), p.perform(melody(), seed=1), p.perform(melody(), seed=2)
    np.testing.assert_array_equal(a.onset, b.onset)
    assert not np.allclose(a.onset, c.onset)


def test_performers_differ_in_timing():
    notes = melody()
    perf = {name: p.perform(notes, seed=0) for name, p in PERFORMERS.items()}
    durations = {name: x.onset[-1] - x.onset[0] for name, x in perf.items()}
    # the global tempo alone separates them: aurora (x1.12) fastest, bruno (x0.85) slowest
    assert max(durations, key=durations.get) == "bruno"
    assert min(durations, key=durations.get) == "aurora"
    assert durations["bruno"] / durations["aurora"] > 1.2
    # beyond tempo: the shape of the inter-onset intervals (rubato, jitter) differs between performers
    shapes = {n: np.diff(x.onset) / np.mean(np.diff(x.onset)) for n, x in perf.items()}
    names = list(shapes)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert np.abs(shapes[first] - shapes[second]).mean() > 0.02, (first, second)
    # articulation: chiara plays detached, bruno legato
    gap = lambda x: np.mean(x.onset[1:] - x.offset[:-1])  # noqa: E731
    assert gap(perf["chiara"]) > 0.03 > gap(perf["bruno"])


def test_performed_timeline_is_valid_and_ends_with_a_ritardando():
    perf = get_performer("dmitri").perform(melody(), seed=0)
    assert np.all(perf.offset > perf.onset)
    assert np.all(np.diff(perf.onset) > 0)  # a monophonic line stays in order despite jitter
    ioi = np.diff(perf.onset)
    assert ioi[-4:].mean() > 1.3 * np.median(ioi)
    assert all(len(b) > 0 for b in perf.bend_cents)
    assert 80 <= np.max(np.concatenate(perf.expression)) <= 127


def test_unknown_performer():
    with pytest.raises(PipelineError, match="unknown performer 'zed'"):
        get_performer("zed")
