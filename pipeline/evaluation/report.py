"""The listening report of the ``evaluate`` stage: a static ``index.html`` with its assets.

``write_report`` builds a self-contained folder (relative links only, no external resources, so it can be
moved or zipped): the metrics table on top, then per held-out clip the score as a piano roll and one card
per system with its name, an audio player (a 16-bit WAV) and its log-mel spectrogram (one colour scale per
clip). This module writes the page and the WAVs; the pictures come from
:mod:`pipeline.evaluation.report_figures`.

The page carries a small script that only runs when it is opened with ``?check=1``: it waits until every
``<audio>`` has loaded its metadata and every ``<img>`` has decoded, then writes a JSON summary into
``<pre id="check-result">``. The test suite's headless-Chromium check (``tests/_browser.py``) reads it.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
import pandas as pd

from pipeline.audio import write_audio
from pipeline.config import MelConfig
from pipeline.evaluation.report_figures import frames_to_seconds, plot_mel, plot_piano_roll
from pipeline.io import atomic_dir

if TYPE_CHECKING:
    from pipeline.evaluation.systems import ClipOutput

CHECK_QUERY = "check=1"  # the page's inline check script only runs when the URL holds this
CHECK_RESULT_ID = "check-result"
EN_DASH = "\u2013"


@dataclass
class ReportClip:
    """A held-out clip: the aligned score notes (in mel frames) and every system's output, in display order
    (a system without a mel gets a card without a picture)."""

    id: str
    title: str
    pitch: np.ndarray
    onset_frame: np.ndarray
    offset_frame: np.ndarray
    outputs: dict[str, ClipOutput] = field(default_factory=dict)
    # per system, this clip's scores shown on its card (what a listener checks by ear: are these the
    # score's notes?), e.g. {"Deep Performer": {"note-onset F1": 0.83, "raw pitch": 0.99}}
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    # the output every other player is set to the loudness of (None: each plays at its own level). A
    # listener hears the louder of two otherwise equal sounds as the better one, so listening tests match
    # loudness; each card then says how loud the system really was ("level -6.0 dB")
    reference: str | None = None


# ---------------------------------------------------------------------------------------------- formatting


def format_value(value) -> str:
    """A table cell: NaN/None as an en dash, floats with 4 significant digits, ints as they are."""
    if value is None:
        return EN_DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return EN_DASH
        if math.isinf(v):
            return "\u221e" if v > 0 else "\u2212\u221e"
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            text = f"{v:.3e}"
        elif abs(v) >= 1000:
            text = f"{v:.1f}"
        else:
            text = f"{v:.4g}"
        return text.replace("-", "\u2212", 1) if text.startswith("-") else text
    try:
        if pd.isna(value):
            return EN_DASH
    except (TypeError, ValueError):
        pass
    return str(value)


def _slug(text: str, used: set[str]) -> str:
    """A file-name-safe, unique slug for ``text``."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-").lower()[:48] or "item"
    slug, n = base, 2
    while slug in used:
        slug, n = f"{base}-{n}", n + 1
    used.add(slug)
    return slug


def _href(path: str) -> str:
    return html.escape(quote(path), quote=True)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------------------------- page

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --bg:#f6f8fa; --card:#fff; --accent:#3b6fb6; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 2px; }
.notes { color: var(--muted); white-space: pre-line; margin: 4px 0 0; }
.meta { color: var(--muted); font-size: 13px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px;
  margin-top: 22px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; min-width: 50%; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { font-size: 13px; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line); }
tbody tr:hover { background: #f0f4fa; }
td.na { color: #a0a7b0; }
img { display: block; max-width: 100%; height: auto; }
.score { margin: 12px 0 4px; border-radius: 6px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; margin-top: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px 12px; background: #fcfdfe; }
.card h3 { font-size: 15px; margin: 0 0 6px; display: flex; justify-content: space-between; gap: 8px; }
.card h3 .meta { font-weight: normal; }
.card.first { border-color: var(--accent); }
audio { width: 100%; height: 36px; margin-bottom: 6px; }
.nomel { color: var(--muted); font-size: 13px; padding: 24px 0; text-align: center; border: 1px dashed var(--line);
  border-radius: 6px; }
#check-result { display: none; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; text-align: center; }
"""

# Runs only when the page is opened with ?check=1 (check_report_in_browser in tests/_browser.py): waits until
# every <audio> has its metadata (or failed) and every <img> has decoded (or failed), then writes a JSON summary
# into <pre id="check-result"> for --dump-dom to carry out.
_CHECK_JS = """
(function () {
  if (!/[?&]check=1\\b/.test(location.search)) return;
  function run() {
    var audios = Array.prototype.slice.call(document.querySelectorAll("audio"));
    var images = Array.prototype.slice.call(document.querySelectorAll("img"));
    var pending = audios.length + images.length, done = false;
    var out = {audio: audios.map(function () { return null; }), audio_src: [], audio_error: [],
               images: images.length, image_width: images.map(function () { return 0; }), image_src: []};
    function finish(reason) {
      if (done) return; done = true;
      out.reason = reason;
      out.audio_ok = out.audio.filter(function (d) { return d !== null && isFinite(d) && d > 0; }).length;
      out.images_ok = out.image_width.filter(function (w) { return w > 0; }).length;
      var pre = document.getElementById("check-result");
      pre.textContent = JSON.stringify(out);
      pre.setAttribute("data-done", "1");
    }
    function tick() { pending -= 1; if (pending <= 0) finish("complete"); }
    audios.forEach(function (a, i) {
      out.audio_src.push(a.getAttribute("src") || "");
      out.audio_error.push(null);
      var settled = false;
      function ok() { if (settled) return; settled = true; out.audio[i] = a.duration; tick(); }
      function bad() { if (settled) return; settled = true;
        out.audio_error[i] = a.error ? (a.error.code + ": " + a.error.message) : "error"; tick(); }
      if (a.readyState >= 1) { ok(); return; }
      a.addEventListener("loadedmetadata", ok);
      a.addEventListener("error", bad);
      var src = a.querySelector("source");
      if (src) src.addEventListener("error", bad);
      a.preload = "metadata";
      a.load();
    });
    images.forEach(function (img, i) {
      out.image_src.push(img.getAttribute("src") || "");
      function ok() { out.image_width[i] = img.naturalWidth; tick(); }
      if (img.complete) { ok(); return; }
      img.addEventListener("load", ok);
      img.addEventListener("error", ok);
    });
    if (pending <= 0) finish("complete");
    setTimeout(function () { finish("timeout"); }, 20000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run); else run();
})();
"""


def _table_html(table: pd.DataFrame) -> str:
    if table is None or table.empty:
        return '<p class="meta">No metrics.</p>'
    index_name = table.index.name or "system"
    head = "".join(f"<th>{_e(c)}</th>" for c in [index_name, *table.columns])
    rows = []
    for name, row in table.iterrows():
        cells = [f"<td>{_e(name)}</td>"]
        for value in row.tolist():
            text = format_value(value)
            cls = ' class="na"' if text == EN_DASH else ""
            cells.append(f"<td{cls}>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="table-wrap"><table id="metrics"><thead><tr>'
        + head
        + "</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )


def write_report(
    out_dir: Path,
    table: pd.DataFrame,
    clips: list[ReportClip],
    title: str,
    mel: MelConfig,
    notes: str = "",
    left_out: pd.DataFrame | None = None,
) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/assets/`` atomically; return the path of ``index.html``.

    ``table``: rows are systems (the index holds their names), columns are metrics; ``mel``: the recipe of
    the clips' frames and audio; ``left_out``: recordings left out of training and evaluation (columns
    ``id``, ``reason``; the mel stage's left_out.csv), listed under the metrics when there are any.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        assets = tmp / "assets"
        assets.mkdir()
        sections = []
        clip_slugs: set[str] = set()
        for clip in clips:
            slug = _slug(clip.id, clip_slugs)
            clip_dir = assets / slug
            clip_dir.mkdir()
            sections.append(_clip_html(clip, clip_dir, f"assets/{slug}", mel))
        page = _page_html(title, notes, table, sections, len(clips), _left_out_html(left_out))
        (tmp / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


PEAK = 0.99  # the highest sample a loudness-matched player may reach


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return np.nan_to_num(audio.mean(axis=1) if audio.ndim == 2 else audio.ravel())


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def _card_scores(scores: dict[str, float]) -> str:
    """``"note-onset F1 0.83 · raw pitch 0.99 · "`` (empty without scores)."""
    return "".join(f"{name} {value:.2f} · " for name, value in scores.items())


def _clip_html(clip: ReportClip, clip_dir: Path, rel: str, mel: MelConfig) -> str:
    sample_rate = mel.sample_rate
    outputs = list(clip.outputs.items())
    mels = [np.asarray(o.mel, dtype=np.float32) for _, o in outputs if o.mel is not None and np.size(o.mel)]
    finite = [m[np.isfinite(m)] for m in mels]
    finite = [f for f in finite if f.size]
    if finite:
        values = np.concatenate([f.ravel() for f in finite])
        vmin, vmax = float(np.percentile(values, 1)), float(values.max())
        if vmax <= vmin:
            vmax = vmin + 1.0
    else:
        vmin, vmax = 0.0, 1.0
    durations = [np.asarray(o.audio).shape[0] / sample_rate for _, o in outputs]
    spans = durations + [m.shape[1] * mel.hop_length / sample_rate for m in mels]
    if np.size(clip.offset_frame):
        spans.append(float(frames_to_seconds(clip.offset_frame, mel).max()))
    seconds = max(spans) if spans else 1.0

    plot_piano_roll(clip_dir / "score.png", clip, seconds, mel)
    cards = []
    used: set[str] = {"score"}
    reference = clip.outputs.get(clip.reference) if clip.reference is not None else None
    reference_rms = _rms(_mono(reference.audio)) if reference is not None else 0.0
    for i, ((name, output), duration) in enumerate(zip(outputs, durations)):
        slug = _slug(name, used)
        audio = _mono(output.audio)
        level = ""
        if reference_rms > 0 and name != clip.reference and _rms(audio) > 0:
            gain = reference_rms / _rms(audio)
            level = f"level {-20 * np.log10(gain):+.1f} dB · "
            audio = audio * gain
            peak = float(np.abs(audio).max())
            if peak > PEAK:  # keep the players clean: a peak limit wins over the loudness match
                audio = audio * (PEAK / peak)
        write_audio(clip_dir / f"{slug}.wav", audio, sample_rate, subtype="PCM_16")
        if output.mel is not None and np.size(output.mel):
            plot_mel(clip_dir / f"{slug}.png", np.asarray(output.mel, dtype=np.float32), clip, seconds, vmin, vmax, mel)
            picture = (
                f'<img src="{_href(f"{rel}/{slug}.png")}" alt="{_e(f"log-mel spectrogram: {name}")}" '
                f'loading="eager" width="640" height="240">'
            )
        else:
            picture = '<div class="nomel">no mel spectrogram</div>'
        cards.append(
            f'<div class="card{" first" if i == 0 else ""}">'
            f'<h3><span>{_e(name)}</span><span class="meta">{_e(_card_scores(clip.scores.get(name, {})))}'
            f"{_e(level)}{duration:.2f} s</span></h3>"
            f'<audio controls preload="metadata" src="{_href(f"{rel}/{slug}.wav")}"></audio>'
            f"{picture}</div>"
        )
    n_notes = int(np.size(clip.pitch))
    matched = (
        f" &middot; every player at the loudness of the {_e(clip.reference)}; each card: its own level"
        if reference_rms > 0
        else ""
    )
    heading = _e(clip.title) if clip.title else _e(clip.id)
    return (
        f'<section class="clip" id="clip-{_e(clip_dir.name)}">'
        f"<h2>{heading}</h2>"
        f'<div class="meta">{_e(clip.id)} &middot; {n_notes} notes &middot; {seconds:.2f} s{matched}</div>'
        f'<img class="score" src="{_href(f"{rel}/score.png")}" alt="{_e(f"score piano roll: {clip.title}")}" '
        f'loading="eager" width="1200" height="264">'
        f'<div class="grid">{"".join(cards)}</div>'
        "</section>"
    )


def _left_out_html(left_out: pd.DataFrame | None) -> str:
    """A section listing the recordings left out (id: reason), or nothing."""
    if left_out is None or left_out.empty:
        return ""
    items = "".join(f"<li><code>{_e(row.id)}</code>: {_e(row.reason)}</li>" for row in left_out.itertuples())
    return (
        f'<section id="left-out"><h2>Left out: low alignment confidence</h2>'
        f'<p class="meta">{len(left_out)} recording{"" if len(left_out) == 1 else "s"} whose score-to-audio '
        "alignment was not trusted (align.min_confidence) are in no part of the split: not trained on, "
        f"not evaluated.</p><ul>{items}</ul></section>\n"
    )


def _page_html(
    title: str, notes: str, table: pd.DataFrame, sections: list[str], n_clips: int, left_out_html: str = ""
) -> str:
    notes_html = f'<p class="notes">{_e(notes)}</p>' if notes else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>"
        f"<header><h1>{_e(title)}</h1>{notes_html}</header>\n"
        f"<section><h2>Metrics</h2>{_table_html(table)}</section>\n"
        f"{left_out_html}"
        + "\n".join(sections)
        + f"\n<footer>{n_clips} clip{'' if n_clips == 1 else 's'} &middot; listening report by deep-performer</footer>"
        f'<pre id="{CHECK_RESULT_ID}"></pre>'
        f"</main><script>{_CHECK_JS}</script></body></html>\n"
    )


__all__ = [
    "ReportClip",
    "format_value",
    "write_report",
]
