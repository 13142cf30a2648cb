"""Atomic writes clean up after writers that were killed: a temporary named with a process id that no longer
runs is removed by the next write to the same target; a live writer's temporary is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io import atomic_dir, atomic_path, write_text


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that ran and was reaped (ids are not reused this fast in practice)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    return proc.pid


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_temporary_names_carry_the_writer_pid(tmp_path):
    with atomic_path(tmp_path / "out.csv") as tmp:
        assert tmp.name.startswith(f".out.csv.{os.getpid()}.") and tmp.name.endswith(".tmp.csv")
        tmp.write_text("x")
    with atomic_dir(tmp_path / "report") as tmp:
        assert tmp.name.startswith(f".report.{os.getpid()}.") and tmp.name.endswith(".tmp")
    assert temporaries(tmp_path) == []


def test_stale_file_temporary_of_a_dead_writer_is_removed(tmp_path, dead_pid):
    stale = tmp_path / f".out.csv.{dead_pid}.abc_1234.tmp.csv"
    stale.write_text("half written")
    other = tmp_path / f".other.csv.{dead_pid}.abc_1234.tmp.csv"  # another target's: not this write's business
    other.write_text("half written")
    write_text(tmp_path / "out.csv", "whole")
    assert (tmp_path / "out.csv").read_text() == "whole"
    assert not stale.exists() and other.exists()


def test_file_temporary_of_a_live_writer_is_kept(tmp_path):
    live = tmp_path / f".out.csv.{os.getpid()}.abc_1234.tmp.csv"
    live.write_text("being written")
    write_text(tmp_path / "out.csv", "whole")
    assert live.read_text() == "being written"


def test_stale_directory_temporary_of_a_dead_writer_is_removed(tmp_path, dead_pid):
    stale = tmp_path / f".report.{dead_pid}.abc_1234.tmp"
    (stale / "audio").mkdir(parents=True)
    (stale / "audio" / "clip.wav").write_bytes(b"RIFF")
    live = tmp_path / f".report.{os.getpid()}.zzz_9876.tmp"
    live.mkdir()
    with atomic_dir(tmp_path / "report") as tmp:
        (tmp / "index.html").write_text("<html></html>")
    assert (tmp_path / "report" / "index.html").is_file()
    assert not stale.exists()
    assert live.is_dir()


def test_names_that_only_look_alike_are_left_alone(tmp_path, dead_pid):
    keep = [
        tmp_path / f".out.csv.{dead_pid}.abc_1234.tmp.csv.bak",  # not a temporary of ours
        tmp_path / f".out.csv.1.{dead_pid}.abc_1234.tmp.1",  # a temporary of the target "out.csv.1"
        tmp_path / ".out.csv.notapid.abc_1234.tmp.csv",
        tmp_path / ".out.csv.0.abc_1234.tmp.csv",  # pid 0 names a process group, never a writer
    ]
    for path in keep:
        path.write_text("x")
    write_text(tmp_path / "out.csv", "whole")
    assert all(path.exists() for path in keep)
