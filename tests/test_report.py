"""The listening report (pipeline.evaluation.report, report_figures): HTML, assets, and a real headless-Chromium
load (tests/_browser.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from _browser import check_report_in_browser, find_chromium

from pipeline.evaluation.report import ReportClip, format_value, write_report
from pipeline.evaluation.systems import ClipOutput
from tests._params import MEL

SR = MEL.sample_rate
HOP = MEL.hop_length
EVIL = "<script>alert('x')</script>"
SYSTEMS = ["recording", "deep performer", f"baseline {EVIL}"]


def _clips() -> list[ReportClip]:
    rng = np.random.default_rng(7)
    clips = []
    for c in range(2):
        outputs = {}
        for s, name in enumerate(SYSTEMS):
            seconds = 1.0 + 0.3 * s + 0.2 * c  # 1.0 .. 1.8 s, all different
            t = np.arange(int(round(seconds * SR))) / SR
            audio = (0.3 * np.sin(2 * np.pi * (330 + 110 * s) * t)).astype(np.float32)
            frames = int(seconds * SR / HOP)
            mel = rng.normal(-4.0, 2.0, size=(80, frames)).astype(np.float32) if s < 2 else None
            outputs[name] = ClipOutput(audio=audio, mel=mel)
        onset = np.array([0, 15, 30, 45]) + 5 * c
        clips.append(
            ReportClip(
                id=f"clip-{c}",
                title=f"Bach {c} & friends",
                pitch=np.array([60, 64, 67, 72]) + c,
                onset_frame=onset,
                offset_frame=onset + 14,
                outputs=outputs,
            )
        )
    return clips


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {"mel_l1": [0.0, 0.43216, 0.9876], "onset_f1": [1.0, 0.8125, np.nan], "n_clips": [2, 2, 2]},
        index=pd.Index(SYSTEMS, name="system"),
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "reports"
    index = write_report(
        out, _table(), _clips(), title="Held-out <listening> test", mel=MEL, notes="line one\nline two"
    )
    assert index == out / "index.html"
    return index


def _srcs(page: str, tag: str) -> list[str]:
    return re.findall(rf'<{tag}\b[^>]*\bsrc="([^"]+)"', page)


def test_html_table_elements_and_assets(report: Path):
    page = report.read_text(encoding="utf-8")
    # the metrics table: formatted numbers, NaN as an en dash
    for text in ("0.4322", "0.9876", "0.8125", ">1<", ">0<", "\u2013", "mel_l1", "onset_f1", "n_clips"):
        assert text in page, text
    assert not re.search(r">\s*nan\s*<", page, re.I)
    # one player per system per clip, one piano roll + one mel per system with a mel
    assert len(re.findall(r"<audio\b", page)) == 6
    assert len(re.findall(r'<audio controls preload="metadata"', page)) == 6
    assert len(re.findall(r"<img\b", page)) == 2 + 2 * 2
    srcs = _srcs(page, "audio") + _srcs(page, "img")
    assert len(srcs) == 12
    for src in srcs:
        assert not src.startswith(("/", "file:", "http:", "https:")), src
        assert (report.parent / src).is_file(), src
    assert not re.search(r"https?://", page), "no external resources"
    wavs = sorted(report.parent.glob("assets/*/*.wav"))
    assert len(wavs) == 6
    for wav in wavs:
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    for png in report.parent.glob("assets/*/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no temporary directories left beside the report
    assert [p.name for p in report.parent.parent.iterdir()] == ["reports"]


def test_text_is_escaped(report: Path):
    page = report.read_text(encoding="utf-8")
    assert EVIL not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "Held-out &lt;listening&gt; test" in page
    assert "Bach 0 &amp; friends" in page
    assert page.count("<script>") == 1  # only the page's own check script


def test_format_value():
    assert format_value(float("nan")) == "\u2013"
    assert format_value(None) == "\u2013"
    assert format_value(np.float32(0.123456)) == "0.1235"
    assert format_value(3) == "3"
    assert format_value(np.int64(12)) == "12"
    assert format_value(0.0) == "0"
    assert format_value(1234.567) == "1234.6"
    assert format_value(2.5e-5) == "2.500e-05"
    assert format_value(-0.5) == "\u22120.5"
    assert format_value("abc") == "abc"


def test_rewrite_replaces_the_folder(tmp_path: Path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    clip = _clips()[0]
    clip.outputs = dict(list(clip.outputs.items())[:1])
    write_report(out, _table().iloc[:1], [clip], title="again", mel=MEL)
    assert not (out / "stale.txt").exists()
    assert (out / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_missing_chromium_is_a_clear_error(tmp_path: Path):
    (tmp_path / "index.html").write_text("<html></html>")
    with pytest.raises(RuntimeError, match=r"scripts/setup.sh"):
        check_report_in_browser(tmp_path / "index.html", chromium="no-such-chromium-binary")


@pytest.mark.browser
def test_report_loads_in_headless_chromium(report: Path, tmp_path: Path):
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.fail("Chromium is not installed (chromium or chromium-browser on PATH): run scripts/setup.sh --test")
    find_chromium()
    # relative links: the folder still works after a move
    moved = tmp_path / "moved report"
    shutil.copytree(report.parent, moved)
    page = (moved / "index.html").read_text(encoding="utf-8")
    audio_srcs, img_srcs = _srcs(page, "audio"), _srcs(page, "img")

    shot = tmp_path / "report.png"
    result = check_report_in_browser(moved / "index.html", screenshot=shot, timeout_s=90)

    assert result["reason"] == "complete", result
    assert len(result["audio"]) == len(audio_srcs) == 6
    assert result["audio_ok"] == 6, result
    for src, duration in zip(audio_srcs, result["audio"]):
        expected = sf.info(str(moved / src)).duration
        assert duration is not None and duration == pytest.approx(expected, abs=0.05), (src, duration, expected)
    assert result["images"] == len(img_srcs) == 6
    assert result["images_ok"] == 6, result
    assert all(w > 0 for w in result["image_width"])

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


def test_each_card_shows_its_clip_scores(tmp_path: Path):
    clip = _clips()[0]
    clip.scores = {"deep performer": {"note-onset F1": 0.8347, "raw pitch": 0.9912}, "recording": {"raw pitch": 0.95}}
    page = write_report(tmp_path / "r", _table(), [clip], title="t", mel=MEL).read_text(encoding="utf-8")
    cards = re.findall(r'<div class="card.*?</div>', page, re.S)
    by_name = {re.search(r"<h3><span>(.*?)</span>", c).group(1): c for c in cards}
    assert "note-onset F1 0.83 · raw pitch 0.99 · " in by_name["deep performer"]
    assert "raw pitch 0.95 · " in by_name["recording"] and "F1" not in by_name["recording"]
    baseline = next(c for n, c in by_name.items() if n.startswith("baseline"))
    assert "raw pitch" not in baseline  # no scores: the duration only


def test_report_clips_come_from_each_test_piece_in_turn():
    from types import SimpleNamespace

    from pipeline.evaluation.report_clips import report_choice

    recordings = ["a__x", "a__x", "a__y", "b__x", "b__x", "c__y"]
    clips = SimpleNamespace(refs=[SimpleNamespace(recording=r) for r in recordings])
    index = pd.DataFrame({"id": ["a__x", "a__y", "b__x", "c__y"], "piece": ["a", "a", "b", "c"]})
    order = list(range(len(recordings)))
    assert report_choice(clips, order, index, 3) == [0, 3, 5]  # the first clip of each piece
    assert report_choice(clips, order, index, 5) == [0, 3, 5, 1, 4]  # then each piece's second
    assert report_choice(clips, order, index, 10) == [0, 3, 5, 1, 4, 2]
    assert report_choice(clips, [4, 2], index, 3) == [2, 4]  # only the clips evaluated


def test_players_are_matched_to_the_recordings_loudness(tmp_path: Path):
    """Every player at the recording's RMS (a quieter system is not heard as worse for being quiet), the
    card saying how loud the system was; a peak limit wins over the match."""
    clip = _clips()[0]
    recording = clip.outputs["recording"].audio
    clip.outputs["deep performer"] = ClipOutput(audio=recording * 0.25, mel=clip.outputs["deep performer"].mel)
    spiky = np.zeros_like(recording)
    spiky[::400] = 0.5  # RMS ~0.025: matched to 0.21 RMS, its peaks would reach 4.2
    clip.outputs["baseline"] = ClipOutput(audio=spiky)
    clip.reference = "recording"
    page = write_report(tmp_path / "r", _table(), [clip], title="t", mel=MEL).read_text(encoding="utf-8")
    folder = tmp_path / "r" / "assets" / "clip-0"
    rms = {p.stem: float(np.sqrt(np.mean(sf.read(p)[0] ** 2))) for p in folder.glob("*.wav")}
    assert 20 * np.log10(rms["deep-performer"] / rms["recording"]) == pytest.approx(0.0, abs=0.05)
    assert np.abs(sf.read(folder / "baseline.wav")[0]).max() == pytest.approx(0.99, abs=1e-3)
    cards = re.findall(r'<div class="card.*?</div>', page, re.S)
    by_name = {re.search(r"<h3><span>(.*?)</span>", c).group(1): c for c in cards}
    assert "level -12.0 dB · " in by_name["deep performer"]
    assert "level" not in by_name["recording"]
    assert "every player at the loudness of the recording" in page
    # without a reference every player keeps its own level
    clip.reference = None
    write_report(tmp_path / "s", _table(), [clip], title="t", mel=MEL)
    quiet = tmp_path / "s" / "assets" / "clip-0" / "deep-performer.wav"
    assert float(np.sqrt(np.mean(sf.read(quiet)[0] ** 2))) == pytest.approx(rms["recording"] * 0.25, rel=0.01)
