"""Headless-Chromium check of the listening report (pipeline.evaluation.report), for the tests only.

``check_report_in_browser`` opens the page in headless Chromium and reports whether every ``<audio>``
loaded its metadata (with a positive finite duration) and every ``<img>`` decoded: the page's own check
script (it runs when the URL holds ``?check=1``) writes a JSON summary into ``<pre id="check-result">``,
which ``--dump-dom`` carries out. Chromium is installed by ``scripts/setup.sh --test`` (``make test``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline.evaluation.report import CHECK_QUERY, CHECK_RESULT_ID
from pipeline.io import atomic_path


def find_chromium(chromium: str | None = None) -> str:
    """The Chromium binary: ``chromium`` if given, else ``chromium`` or ``chromium-browser`` on PATH."""
    candidates = [chromium] if chromium else ["chromium", "chromium-browser"]
    for name in candidates:
        found = shutil.which(name) if name else None
        if found:
            return found
    raise RuntimeError(
        f"Chromium not found ({' or '.join(c for c in candidates if c)} on PATH): "
        "run `bash scripts/setup.sh --test` (what `make test` does), which installs Debian's chromium package"
    )


def _chromium_cmd(binary: str, profile: str) -> list[str]:
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--mute-audio",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
    ]


def _run_chromium(cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"Chromium did not finish within {timeout_s:.0f} s: {' '.join(cmd)}") from err


def check_report_in_browser(
    index_html: Path,
    screenshot: Path | None = None,
    chromium: str | None = None,
    timeout_s: float = 60,
) -> dict:
    """Open the report in headless Chromium and report what loaded.

    Returns ``{"audio": [duration or None per <audio>], "audio_ok": n, "audio_src": [...], "audio_error": [...],
    "images": n, "images_ok": n, "image_width": [...], "image_src": [...], "elapsed_s": s}`` (plus
    ``"screenshot"`` when one was taken). Raises RuntimeError when Chromium is missing or fails.
    """
    index_html = Path(index_html).resolve()
    if not index_html.is_file():
        raise FileNotFoundError(index_html)
    binary = find_chromium(chromium)
    url = index_html.as_uri()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        cmd = _chromium_cmd(binary, profile) + [
            "--virtual-time-budget=30000",
            "--dump-dom",
            f"{url}?{CHECK_QUERY}",
        ]
        proc = _run_chromium(cmd, timeout_s)
        match = re.search(rf'<pre id="{CHECK_RESULT_ID}"[^>]*>(.*?)</pre>', proc.stdout, re.S)
        if proc.returncode != 0 or match is None or not match.group(1).strip():
            tail = (proc.stderr or "").strip().splitlines()[-5:]
            raise RuntimeError(
                f"headless Chromium gave no check result for {index_html} (exit {proc.returncode}): " + " | ".join(tail)
            )
        result = json.loads(html.unescape(match.group(1)))
        if screenshot is not None:
            screenshot = Path(screenshot).resolve()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(screenshot) as tmp:
                shot = _run_chromium(
                    _chromium_cmd(binary, profile)
                    + ["--virtual-time-budget=10000", f"--screenshot={tmp}", "--window-size=1280,2000", url],
                    max(1.0, timeout_s - (time.monotonic() - start)),
                )
                if shot.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
                    tail = (shot.stderr or "").strip().splitlines()[-5:]
                    raise RuntimeError(
                        f"headless Chromium took no screenshot (exit {shot.returncode}): " + " | ".join(tail)
                    )
            result["screenshot"] = str(screenshot)
    result["elapsed_s"] = round(time.monotonic() - start, 2)
    return result
