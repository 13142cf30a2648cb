"""Cutting recordings out of long source files: decode once, write each cut as 16-bit FLAC.

Shared by every dataset whose recordings are spans of longer files (the Bach Violin Dataset's
info.csv, MAESTRO's whole performances, a folder source's pieces.csv start/end).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.audio import FFMPEG_SUFFIXES, decode_with_ffmpeg
from pipeline.errors import PipelineError
from pipeline.io import atomic_path

READ_BLOCK = 1 << 16  # frames per read of a PCM source (and per write)
# Containers of plain PCM (or FLAC) are decoded block by block. Any other (MP3, Ogg/Opus...) is
# decoded in ONE read call: libsndfile 1.2.2's MP3 decoder returns wrong samples after the
# boundary of a read that splits a codec frame (measured: up to 0.6 off for several hundred
# samples, whatever the block size, 1152 included), and its MP3 seeking is off by thousands of
# samples. The whole recording is held as int16 (2 bytes a sample: 200 MB for 19 min stereo at
# 44.1 kHz), which loses nothing since the cuts are written as 16-bit FLAC.
BLOCKWISE_FORMATS = {"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF", "FLAC"}
END_SLACK_S = 1.0  # info.csv cut points are whole seconds: the last one may pass the file's end


@dataclass
class Cut:
    """One movement to cut out of a source recording: [start, end) seconds into ``dest``."""

    name: str
    start: float
    end: float | None  # None: to the end of the recording
    dest: Path
    frames: int = 0  # written so far


def parse_clock(value: object, where: str, path: Path) -> float:
    """Seconds of an ``H:MM:SS`` (or ``MM:SS``, ``SS``; fractional seconds allowed) cut point."""
    text = str(value).strip()
    if not re.fullmatch(r"\d+(:\d{1,2}){0,2}(\.\d*)?", text):
        raise PipelineError(f"{where}: cannot read time {text!r} (expected H:MM:SS)", path)
    seconds = 0.0
    for field in text.split(":"):
        seconds = seconds * 60.0 + float(field)
    return seconds


def _decode(src: sf.SoundFile):
    """Float32 blocks ``(frames, channels)`` of an open source, in order (see BLOCKWISE_FORMATS)."""
    if src.format in BLOCKWISE_FORMATS:
        yield from src.blocks(READ_BLOCK, dtype="float32", always_2d=True)
        return
    yield from _int16_blocks(src.read(dtype="int16", always_2d=True))


def _int16_blocks(whole: np.ndarray) -> Iterator[np.ndarray]:
    for first in range(0, len(whole), READ_BLOCK):
        yield whole[first : first + READ_BLOCK].astype(np.float32) * np.float32(1 / 32768)


@contextlib.contextmanager
def _open_source(source: Path) -> Iterator[tuple[int, int, Iterator[np.ndarray]]]:
    """Rate, channels and float32 blocks of ``source`` (libsndfile, or FFmpeg for FFMPEG_SUFFIXES)."""
    if source.suffix.lower() in FFMPEG_SUFFIXES:
        whole, rate = decode_with_ffmpeg(source)  # int16, like libsndfile's compressed formats below
        yield rate, whole.shape[1], _int16_blocks(whole)
        return
    try:
        handle = sf.SoundFile(str(source))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise PipelineError(f"not a readable audio file ({err})", source) from err
    with handle as src:
        yield src.samplerate, src.channels, _decode(src)


def cut_to_flac(source: Path, cuts: list[Cut], mono: bool = True) -> int:
    """Decode ``source`` once and write each cut as 16-bit FLAC; returns the source sample rate.

    PCM and FLAC sources are streamed (memory: one block); compressed ones are held once as int16
    (see BLOCKWISE_FORMATS). Nothing is seeked. Cuts may overlap and come in any order. A cut
    that starts past the end of the recording is a PipelineError; one that ends past it (by up
    to END_SLACK_S) is shortened.
    """
    with _open_source(source) as (rate, source_channels, blocks), contextlib.ExitStack() as stack:
        channels = 1 if mono else source_channels
        spans = [(round(c.start * rate), round(c.end * rate) if c.end is not None else sys.maxsize, c) for c in cuts]
        writers: dict[int, sf.SoundFile] = {}
        last = max((stop for _, stop, _ in spans), default=0)
        pos = 0
        try:
            for block in blocks:
                if mono:
                    block = block.mean(axis=1, keepdims=True)
                np.clip(block, -1.0, 1.0, out=block)  # lossy decoders overshoot slightly; never wrap
                n = len(block)
                for index, (start, stop, cut) in enumerate(spans):
                    lo, hi = max(start, pos), min(stop, pos + n)
                    if lo >= hi:
                        continue
                    if index not in writers:
                        tmp = stack.enter_context(atomic_path(cut.dest))
                        writers[index] = stack.enter_context(
                            sf.SoundFile(str(tmp), "w", rate, channels, subtype="PCM_16", format="FLAC")
                        )
                    writers[index].write(block[lo - pos : hi - pos])
                    cut.frames += hi - lo
                pos += n
                if pos >= last:
                    break
        except (sf.LibsndfileError, RuntimeError) as err:
            raise PipelineError(f"audio decoding failed at {pos / rate:.1f} s ({err})", source) from err
        for start, stop, cut in spans:
            if cut.frames == 0:
                raise PipelineError(
                    f"{cut.name} starts at {cut.start:.1f} s but the recording lasts {pos / rate:.1f} s",
                    source,
                )
            if cut.end is not None and stop - start - cut.frames > END_SLACK_S * rate:
                raise PipelineError(
                    f"{cut.name} ends at {cut.end:.1f} s but the recording lasts {pos / rate:.1f} s",
                    source,
                )
        for writer in writers.values():  # close (flush) before atomic_path renames them
            writer.close()
    return rate
