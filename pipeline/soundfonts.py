"""Locating SoundFonts installed by the system packages (scripts/setup.sh installs them)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import PipelineError

SEARCH_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts", "/usr/local/share/soundfonts")
FLUID_R3 = "FluidR3_GM.sf2"
MUSESCORE_GENERAL = "MuseScore_General.sf3"
TIMGM6MB = "TimGM6mb.sf2"


def find_soundfont(name: str | Path) -> Path:
    """Resolve a SoundFont by path or by file name in the usual system folders.

    ``$PERFORMER_SOUNDFONT_DIR`` (colon-separated) is searched first.
    """
    candidate = Path(name)
    if candidate.is_file():
        return candidate
    extra = [d for d in os.environ.get("PERFORMER_SOUNDFONT_DIR", "").split(":") if d]
    for folder in (*extra, *SEARCH_DIRS):
        path = Path(folder) / candidate.name
        if path.is_file():
            return path
    raise PipelineError(
        f"SoundFont {candidate.name!r} not found in {', '.join((*extra, *SEARCH_DIRS))}; "
        "run scripts/setup.sh (it installs fluid-soundfont-gm, musescore-general-soundfont, timgm6mb-soundfont)"
    )
