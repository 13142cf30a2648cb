"""Downloader and zip extraction against a local HTTP server (127.0.0.1 only)."""

import hashlib
import socket
import stat
import zipfile

import numpy as np
import pytest

from _http_server import FileServer
from pipeline.datasets.download import download, extract_zip, url_filename
from pipeline.errors import PipelineError


@pytest.fixture
def payload(tmp_path):
    """A 300 kB random file served from tmp/served, and its digests."""
    served = tmp_path / "served"
    served.mkdir()
    data = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (served / "data.bin").write_bytes(data)
    return served, data, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.server
def test_download_verifies_and_skips_a_verified_copy(tmp_path, payload):
    served, data, sha, md5 = payload
    dest = tmp_path / "dl" / "data.bin"
    with FileServer(served) as server:
        url = server.url("data.bin")
        assert download(url, dest, sha256=sha, md5=md5, size=len(data)) == dest
        assert dest.read_bytes() == data
        assert files_under(tmp_path / "dl") == ["data.bin"]  # no .part left
        download(url, dest, sha256=sha)
        assert len(server.gets("/data.bin")) == 1  # the verified copy was kept, nothing fetched


@pytest.mark.parametrize("kind", ["sha256", "md5"])
@pytest.mark.server
def test_wrong_checksum_is_refused_and_nothing_kept(tmp_path, payload, kind):
    served, _data, sha, md5 = payload
    wrong = "0" * (64 if kind == "sha256" else 32)
    download_dir = tmp_path / "dl"
    with FileServer(served) as server:
        url = server.url("data.bin")
        with pytest.raises(PipelineError) as err:
            download(url, download_dir / "data.bin", **{kind: wrong})
    message = str(err.value)
    actual = sha if kind == "sha256" else md5
    assert url in message and wrong in message and actual in message and "data.bin" in message
    assert files_under(download_dir) == []


@pytest.mark.server
def test_wrong_size_is_refused(tmp_path, payload):
    served, data, *_ = payload
    with FileServer(served) as server:
        with pytest.raises(PipelineError, match="size mismatch"):
            download(server.url("data.bin"), tmp_path / "data.bin", size=len(data) + 1)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


@pytest.mark.server
def test_cut_off_transfer_is_resumed_with_a_range_request(tmp_path, payload):
    served, data, sha, _ = payload
    dest = tmp_path / "data.bin"
    with FileServer(served) as server:
        server.cut_once.add("/data.bin")
        download(server.url("data.bin"), dest, sha256=sha, chunk=16 << 10, backoff=0)
        log = server.gets("/data.bin")
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha
    assert len(log) == 2
    assert log[0][1] is None and log[0][2] == 200
    offset = int(log[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= len(data) // 2 and log[1][2] == 206  # only the missing tail was sent again


@pytest.mark.server
def test_server_ignoring_range_restarts_cleanly(tmp_path, payload):
    served, data, sha, _ = payload
    dest = tmp_path / "data.bin"
    with FileServer(served, honour_range=False) as server:
        server.cut_once.add("/data.bin")
        download(server.url("data.bin"), dest, sha256=sha, chunk=16 << 10, backoff=0)
        log = server.gets("/data.bin")
    assert dest.read_bytes() == data
    assert [status for *_, status in log] == [200, 200] and log[1][1] is not None


@pytest.mark.server
def test_partial_file_from_an_earlier_run_is_resumed(tmp_path, payload):
    served, data, sha, _ = payload
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(data[:100_000])
    with FileServer(served) as server:
        download(server.url("data.bin"), dest, sha256=sha)
        assert server.gets("/data.bin") == [("/data.bin", "bytes=100000-", 206)]
    assert dest.read_bytes() == data


@pytest.mark.server
def test_complete_part_file_answers_416_and_is_kept(tmp_path, payload):
    served, data, sha, _ = payload
    (tmp_path / "data.bin.part").write_bytes(data)
    with FileServer(served) as server:
        download(server.url("data.bin"), tmp_path / "data.bin", sha256=sha)
        assert [status for *_, status in server.gets("/data.bin")] == [416]
    assert (tmp_path / "data.bin").read_bytes() == data


@pytest.mark.server
def test_corrupt_existing_copy_is_fetched_again(tmp_path, payload):
    served, data, sha, _ = payload
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"garbage")
    with FileServer(served) as server:
        download(server.url("data.bin"), dest, sha256=sha)
        assert len(server.gets("/data.bin")) == 1
    assert dest.read_bytes() == data


def test_unreachable_server_gives_up_after_retries(tmp_path):
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.bin"
    with pytest.raises(PipelineError, match="after 3 attempts") as err:
        download(url, tmp_path / "data.bin", retries=2, backoff=0)
    assert url in str(err.value)
    assert not (tmp_path / "data.bin").exists()


@pytest.mark.server
def test_missing_url_is_a_one_line_error(tmp_path, payload):
    served, *_ = payload
    with FileServer(served) as server:
        url = server.url("nope.zip")
        with pytest.raises(PipelineError, match="HTTP 404") as err:
            download(url, tmp_path / "nope.zip")
    assert url in str(err.value) and "\n" not in str(err.value)


def test_url_filename():
    assert url_filename("https://x.org/a/maestro-v3.0.0.zip?download=1") == "maestro-v3.0.0.zip"
    assert url_filename("https://x.org/records/1/files/bach%20violin.zip") == "bach violin.zip"


# ----------------------------------------------------------------------------- extraction


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members:
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, content)
            else:
                zf.writestr(zipfile.ZipInfo(name), content)
    return path


def symlink_member(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_extract_zip_writes_the_tree_and_replaces_an_old_one(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("top/", b""), ("top/a.txt", b"a"), ("top/sub/b.txt", b"b")])
    target = tmp_path / "out"
    (target / "stale").mkdir(parents=True)
    assert extract_zip(archive, target) == target
    assert files_under(target) == ["top", "top/a.txt", "top/sub", "top/sub/b.txt"]
    assert (target / "top" / "sub" / "b.txt").read_bytes() == b"b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "out"]  # no temporary folder left


@pytest.mark.parametrize(
    "bad",
    ["../evil", "top/../../evil", "/etc/evil", "C:/evil", "..\\evil", symlink_member("top/link")],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash", "symlink"],
)
def test_extract_zip_refuses_escaping_members_and_extracts_nothing(tmp_path, bad):
    work = tmp_path / "work"
    work.mkdir()
    archive = make_zip(work / "evil.zip", [("top/ok.txt", b"fine"), (bad, b"/etc/passwd")])
    target = work / "out"
    with pytest.raises(PipelineError) as err:
        extract_zip(archive, target)
    message = str(err.value)
    name = bad.filename if isinstance(bad, zipfile.ZipInfo) else bad
    assert "evil.zip" in message and repr(name) in message
    assert sorted(p.name for p in work.iterdir()) == ["evil.zip"]  # nothing extracted, no temp folder
    assert not (tmp_path / "evil").exists()


def test_extract_zip_reports_a_corrupt_archive(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(PipelineError, match=r"broken.zip"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
