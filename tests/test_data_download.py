"""Tests for download_mnist, against local HTTP servers only (never the internet).

Each "mirror" is an http.server on 127.0.0.1 serving a temporary folder. Most tests
use copies of the real MNIST files (skipped if absent); one uses tiny synthetic
files with patched checksums so the download logic is tested without the data.
"""

import functools
import gzip
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.data import MNIST_FILES, DataFormatError, download_mnist, load_mnist, verify_mnist
from ack_numpy.data import mnist

from conftest import mnist_dir as find_real_mnist
from idx_files import write_idx

NAMES = list(MNIST_FILES.values())


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server for `folder`; all stopped at teardown."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """A proxy set in the environment must not intercept requests to 127.0.0.1."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture(scope="module")
def real_dir():
    directory = find_real_mnist()  # the one rule, in conftest.py
    if directory is None or not all((directory / f"{name}.gz").exists() for name in NAMES):
        pytest.skip(f"real MNIST .gz files not found ({directory}); set ACK_MNIST_DIR")
    return directory


def _good_mirror(real_dir: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in NAMES:
        shutil.copy(real_dir / f"{name}.gz", folder)
    return folder


def _corrupt_gz(path: Path) -> None:
    """Replace a .gz by a valid gzip whose content differs in one byte."""
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(content), compresslevel=1))  # fast


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.mnist
def test_download_from_local_mirror(real_dir, tmp_path, serve):
    url = serve(_good_mirror(real_dir, tmp_path / "mirror"))
    messages = []
    dest = download_mnist(dest=tmp_path / "dl", mirrors=[url], timeout=5, progress=messages.append)
    assert dest == tmp_path / "dl"
    assert _listing(dest) == sorted(f"{name}.gz" for name in NAMES)  # no leftovers
    assert verify_mnist(dest) == {name: "ok" for name in NAMES}
    x, y = load_mnist("test", data_dir=dest)
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert sum("checksum verified" in m for m in messages) == 4

    # A second call finds everything in place and downloads nothing.
    messages.clear()
    download_mnist(dest=dest, mirrors=[url], progress=messages.append)
    assert len(messages) == 4 and all("already present" in m for m in messages)


@pytest.mark.mnist
def test_falls_back_to_next_mirror(real_dir, tmp_path, serve):
    bad = _good_mirror(real_dir, tmp_path / "bad")
    _corrupt_gz(bad / "t10k-labels-idx1-ubyte.gz")
    (bad / "train-labels-idx1-ubyte.gz").unlink()  # a 404 on the first mirror
    good = _good_mirror(real_dir, tmp_path / "good")
    messages = []
    dest = download_mnist(tmp_path / "dl", mirrors=[serve(bad), serve(good)], progress=messages.append)
    assert verify_mnist(dest) == {name: "ok" for name in NAMES}
    assert _listing(dest) == sorted(f"{name}.gz" for name in NAMES)
    failures = [m for m in messages if "failed" in m]
    assert len(failures) == 2
    assert any("checksum mismatch" in m for m in failures)
    assert any("404" in m for m in failures)


@pytest.mark.mnist
def test_all_bad_mirror_changes_nothing(real_dir, tmp_path, serve):
    bad = _good_mirror(real_dir, tmp_path / "bad")
    for name in NAMES:
        _corrupt_gz(bad / f"{name}.gz")
    dest = tmp_path / "dl"
    dest.mkdir()
    # A good file already in place (the first one downloaded) must survive untouched.
    shutil.copy(real_dir / "train-images-idx3-ubyte.gz", dest)
    before = (dest / "train-images-idx3-ubyte.gz").read_bytes()

    with pytest.raises(DataFormatError) as info:
        download_mnist(dest, mirrors=[serve(bad)], progress=None)
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message and "checksum mismatch" in message
    assert "No mirror served a genuine copy." in message and "No internet?" not in message  # the mirror answered
    assert str(dest) in message and "--data-dir" in message and ".tmp" not in message
    assert _listing(dest) == ["train-images-idx3-ubyte.gz"]  # no partial or temp files
    assert (dest / "train-images-idx3-ubyte.gz").read_bytes() == before


@pytest.mark.mnist
def test_corrupt_existing_file_is_replaced_only_by_a_good_one(real_dir, tmp_path, serve):
    dest = tmp_path / "dl"
    dest.mkdir()
    shutil.copy(real_dir / "t10k-labels-idx1-ubyte.gz", dest)
    _corrupt_gz(dest / "t10k-labels-idx1-ubyte.gz")
    download_mnist(dest, mirrors=[serve(_good_mirror(real_dir, tmp_path / "good"))], progress=None)
    assert verify_mnist(dest)["t10k-labels-idx1-ubyte"] == "ok"


def test_unreachable_mirror_gives_clear_error(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/"
    dest = tmp_path / "dl"
    with pytest.raises(DataFormatError) as info:
        download_mnist(dest, mirrors=[url], timeout=5, progress=None)
    message = str(info.value)
    assert "could not download" in message and url in message
    assert "refused" in message.lower()
    assert "No internet? Copy the four MNIST files into" in message
    assert not dest.exists()  # the folder it made for the files is taken away again


def test_download_logic_with_synthetic_files(tmp_path, serve, monkeypatch):
    """Runs without the real data: tiny IDX files whose checksums we patch in."""
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in NAMES:
        images = "images" in name
        array = rng.integers(0, 256 if images else 10, size=(5, 28, 28) if images else (5,), dtype=np.uint8)
        write_idx(mirror / f"{name}.gz", array)
        digest = hashlib.sha256(gzip.decompress((mirror / f"{name}.gz").read_bytes())).hexdigest()
        monkeypatch.setitem(mnist.MNIST_SHA256, name, digest)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in NAMES:
        (broken / f"{name}.gz").write_bytes(b"<html>not a gzip file</html>")

    dead = f"http://127.0.0.1:{_closed_port()}/"
    dest = download_mnist(tmp_path / "dl", mirrors=[dead, serve(broken), serve(mirror)], progress=None)
    assert _listing(dest) == sorted(f"{name}.gz" for name in NAMES)
    for name in NAMES:
        assert (dest / f"{name}.gz").read_bytes() == (mirror / f"{name}.gz").read_bytes()
    x, y = load_mnist("train", data_dir=dest)
    assert x.shape == (5, 1, 28, 28) and y.shape == (5,)


def test_find_or_download_only_downloads_when_nothing_was_named(tmp_path, monkeypatch):
    """`train --download`: a named folder is used (or is an error), never silently replaced."""
    calls = []
    monkeypatch.setattr(mnist, "download_mnist", lambda: calls.append("download") or tmp_path)
    monkeypatch.setattr(mnist, "default_mnist_dirs", lambda: [tmp_path / "nowhere"])
    monkeypatch.delenv("ACK_MNIST_DIR", raising=False)
    assert mnist.find_or_download_mnist() == tmp_path and calls == ["download"]
    with pytest.raises(DataFormatError, match="given as data_dir"):
        mnist.find_or_download_mnist(tmp_path / "empty-but-named")
    monkeypatch.setenv("ACK_MNIST_DIR", str(tmp_path / "env-dir"))
    with pytest.raises(DataFormatError, match="ACK_MNIST_DIR"):
        mnist.find_or_download_mnist()
    assert calls == ["download"]


# ----------------------------------------------------------------------------- hostile mirrors
class TrickleHandler(QuietHandler):
    """Sends `head` and then one byte every 0.2 s: each read succeeds, the file does not end."""
    head = b"HTTP/1.0 200 OK\r\nContent-Length: 10000000\r\n\r\n"

    def do_GET(self):
        try:
            self.wfile.write(self.head)
            for _ in range(150):  # 30 s, then it gives up: a broken deadline fails the test, never hangs it
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


class HeaderTrickleHandler(TrickleHandler):
    """The same inside a header line: the headers do not end."""
    head = b"HTTP/1.0 200 OK\r\nX-Slow: "


def _start(handler) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.mark.parametrize("handler, connecting", [(TrickleHandler, 0.0), (HeaderTrickleHandler, 0.0),
                                                 (HeaderTrickleHandler, 2.0)],
                         ids=["body", "headers", "headers-after-a-slow-connect"])
def test_a_trickling_mirror_is_left_at_the_deadline_not_after_weeks(handler, connecting, tmp_path, monkeypatch):
    """In the body, in the headers, and when the deadline passes while still connecting."""
    import http.client

    connect = http.client.HTTPConnection.connect

    def slow_connect(self):
        time.sleep(connecting)
        connect(self)
    monkeypatch.setattr(http.client.HTTPConnection, "connect", slow_connect)
    server, url = _start(handler)
    try:
        started = time.monotonic()
        with pytest.raises(DataFormatError) as info:
            download_mnist(tmp_path / "dl", mirrors=[url], timeout=5, deadline=1.5, progress=None)
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert "not finished after 1.5 s (" in message and "bytes received): too slow" in message
    assert not (tmp_path / "dl").exists()   # the temp file is gone, and the folder made for it


def test_the_download_error_is_one_line_naming_each_url_once(tmp_path, serve):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in NAMES:
        (bad / f"{name}.gz").write_bytes(gzip.compress(b"not mnist"))
    urls = [serve(empty), serve(bad), f"http://127.0.0.1:{_closed_port()}/"]
    with pytest.raises(DataFormatError) as info:
        download_mnist(tmp_path / "dl", mirrors=urls, timeout=5, progress=None)
    message = str(info.value)
    assert "\n" not in message
    for url in urls:
        assert message.count(url) == 1, message
    assert "url: url" not in message and ".tmp" not in message
    assert "HTTP 404" in message and "checksum mismatch" in message and "refused" in message.lower()


def test_downloaded_files_are_readable_by_others_as_any_new_file(tmp_path, serve, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in NAMES:
        write_idx(mirror / f"{name}.gz", np.zeros((2, 28, 28) if "images" in name else (2,), np.uint8))
    monkeypatch.setattr(mnist, "MNIST_SHA256", {n: mnist.content_sha256(mirror / f"{n}.gz") for n in NAMES})
    old = os.umask(0o022)
    try:
        dest = download_mnist(tmp_path / "dl", mirrors=[serve(mirror)], progress=None)
    finally:
        os.umask(old)
    for name in NAMES:
        assert stat.S_IMODE((dest / f"{name}.gz").stat().st_mode) == 0o644   # not 0600: a shared folder works


def test_a_download_killed_mid_file_leaves_no_temp_file_after_the_next_one(tmp_path, serve, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in NAMES:
        write_idx(mirror / f"{name}.gz", np.zeros((2, 28, 28) if "images" in name else (2,), np.uint8))
    monkeypatch.setattr(mnist, "MNIST_SHA256", {n: mnist.content_sha256(mirror / f"{n}.gz") for n in NAMES})
    dest = tmp_path / "dl"
    dest.mkdir()
    # What kill -9 leaves: a temp file of a process that no longer runs.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = dest / f".{NAMES[0]}.gz.{int(dead.stdout)}.0badcafe.tmp"
    leftover.write_bytes(b"half a download")
    download_mnist(dest, mirrors=[serve(mirror)], progress=None)
    assert _listing(dest) == sorted(f"{name}.gz" for name in NAMES)


def test_download_goes_where_training_will_look(tmp_path, monkeypatch):
    """$ACK_MNIST_DIR is where train and evaluate look first: download puts MNIST there too,
    unless --dest (or its other name, --data-dir) says otherwise."""
    from ack_numpy.cli import build_parser

    monkeypatch.setenv("ACK_MNIST_DIR", str(tmp_path / "from-env"))
    assert mnist.download_folder() == tmp_path / "from-env"
    monkeypatch.delenv("ACK_MNIST_DIR")
    assert mnist.download_folder() == mnist.default_mnist_dirs()[0]
    for option in ("--dest", "--data-dir"):
        assert build_parser("ack-numpy").parse_args(["download", option, "X"]).dest == "X"


def test_a_download_that_got_nothing_leaves_no_empty_folders(tmp_path):
    dest = tmp_path / "new" / "mnist"
    with pytest.raises(DataFormatError):
        download_mnist(dest, mirrors=[f"http://127.0.0.1:{_closed_port()}/"], timeout=5, progress=None)
    assert not (tmp_path / "new").exists()  # both folders it made are gone; tmp_path, which was there, stays


def test_a_mirror_serving_a_cut_gzip_is_named_and_the_temp_file_is_not(tmp_path, serve):
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in NAMES:
        (cut / f"{name}.gz").write_bytes(gzip.compress(bytes(range(256)) * 64)[:40])  # the first 40 bytes only
    with pytest.raises(DataFormatError) as info:
        download_mnist(tmp_path / "dl", mirrors=[serve(cut)], progress=None)
    message = str(info.value)
    assert "(corrupt gzip data (EOFError" in message and ".tmp" not in message
    assert "No mirror served a genuine copy." in message


def test_a_python_without_ssl_can_still_load_the_data_module():
    """urllib has no HTTPSHandler then: only http:// mirrors, and reading MNIST works."""
    import subprocess
    import sys

    code = "import sys; sys.modules['ssl'] = None; import ack_numpy.data.mnist, ack_numpy.cli; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
