"""files.atomic_write, the one write-then-rename of the package, and quote_path.

What it promises: the target holds either the old bytes or the new ones, never a mix or
half; a failed or killed writer leaves the old file and at most its own temp file, which
the next write removes once its process is gone; concurrent writers never share a temp
file; the result has the permissions of any new file.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ack_numpy.files import atomic_write, quote_path, remove_dead_writers_temp_files

posix_only = pytest.mark.skipif(os.name != "posix", reason="pids and signals as on POSIX")


def others(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_writes_text_and_bytes_and_leaves_no_temp_file(tmp_path):
    with atomic_write(tmp_path / "a.txt", "w") as f:
        f.write("one\n")
    with atomic_write(tmp_path / "b.bin") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "a.txt").read_text() == "one\n" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with atomic_write(tmp_path / "a.txt", "w", durable=True) as f:  # replaces, with both fsyncs
        f.write("two\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]
    assert (tmp_path / "a.txt").read_text() == "two\n"


def test_the_file_object_names_the_temp_file_beside_the_target(tmp_path):
    with atomic_write(tmp_path / "x.npz") as f:
        f.write(b"abc")
        f.flush()
        temp = Path(f.name)
        assert temp.parent == tmp_path and temp.read_bytes() == b"abc"
        assert re.fullmatch(rf"\.x\.npz\.{os.getpid()}\.\w+\.tmp", temp.name), temp.name
        assert not (tmp_path / "x.npz").exists()  # nothing at the name until the block ends
    assert not temp.exists()


def test_an_exception_mid_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path, "w") as f:
            f.write("new, but only hal")
            raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert others(tmp_path, path.name) == []


def test_a_check_that_fails_before_the_rename_changes_nothing(tmp_path):
    # The MNIST download reads the temp file back (its checksum) inside the block.
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with pytest.raises(ValueError, match="checksum"):
        with atomic_write(path) as f:
            f.write(b"not mnist")
            f.flush()
            if Path(f.name).read_bytes() != b"mnist":
                raise ValueError("checksum does not match")
    assert not path.exists() and others(tmp_path, path.name) == []


WRITER = """
import sys
from ack_numpy.files import atomic_write
path = sys.argv[1]
i = 0
while True:
    i += 1
    with atomic_write(path, "w") as f:
        for _ in range(20000):
            f.write(f"{i:08d}\\n")
    print(i, flush=True)
"""


@posix_only
def test_kill_9_mid_write_leaves_a_whole_file_and_the_next_write_removes_the_temp_file(tmp_path):
    path = tmp_path / "metrics.csv"
    for delay in (0.0, 0.05, 0.13):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() != ""  # one complete file at least
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
        lines = path.read_text().splitlines()
        assert len(lines) == 20000 and len(set(lines)) == 1  # all of one write, none of the next
        left = others(tmp_path, path.name)
        assert all(re.fullmatch(rf"\.metrics\.csv\.{writer.pid}\.\w+\.tmp", n) for n in left), left
    with atomic_write(path, "w") as f:  # the writers are dead: their temp files go
        f.write("fresh\n")
    assert others(tmp_path, path.name) == [] and path.read_text() == "fresh\n"


@posix_only
def test_the_clean_up_removes_dead_writers_files_only(tmp_path):
    path = tmp_path / "checkpoint.npz"
    alive = tmp_path / f".checkpoint.npz.{os.getppid()}.ab12.tmp"  # our parent process runs
    mine = tmp_path / f".checkpoint.npz.{os.getpid()}.cd34.tmp"     # another thread of ours may be writing it
    dead = tmp_path / ".checkpoint.npz.999999999.ef56.tmp"           # no such process
    impossible = tmp_path / f".checkpoint.npz.{10**30}.tmp"          # not even a valid pid
    other_name = tmp_path / ".metrics.csv.999999999.ab12.tmp"        # another target's: not ours to judge
    not_a_temp = tmp_path / ".checkpoint.npz.notes"
    for p in (alive, mine, dead, impossible, other_name, not_a_temp):
        p.write_bytes(b"half")
    remove_dead_writers_temp_files(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, mine, other_name, not_a_temp))


def test_the_clean_up_takes_names_with_glob_characters_literally(tmp_path):
    path = tmp_path / "run[1].csv"
    dead = tmp_path / ".run[1].csv.999999999.ab.tmp"
    bystander = tmp_path / ".run1.csv.999999999.ab.tmp"  # what [1] would match as a glob
    dead.write_text("x"), bystander.write_text("x")
    with atomic_write(path, "w") as f:
        f.write("ok")
    assert bystander.exists() and (not dead.exists() or os.name != "posix")


def test_concurrent_writers_never_mix_and_leave_no_temp_file(tmp_path):
    path = tmp_path / "results.json"
    errors = []

    def write(k: int) -> None:
        try:
            for _ in range(30):
                with atomic_write(path, "w") as f:
                    for _ in range(200):
                        f.write(f"writer {k}\n")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if path.exists():
            lines = path.read_text().splitlines()
            assert len(lines) == 200 and len(set(lines)) == 1, "a reader saw a mixed or partial file"
    for t in threads:
        t.join()
    assert errors == []
    assert others(tmp_path, path.name) == []
    assert path.read_text().splitlines()[0] in {f"writer {k}" for k in range(4)}


@posix_only
def test_the_result_has_the_permissions_of_a_new_file(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    path.chmod(0o600)
    old_umask = os.umask(0o027)
    try:
        with atomic_write(path) as f:
            f.write(b"new")
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o640  # 0o666 minus the umask, not mkstemp's 0o600


def test_a_folder_that_is_a_file_raises_and_leaves_nothing(tmp_path):
    folder = tmp_path / "out"
    folder.write_text("a file, not a folder")
    with pytest.raises(NotADirectoryError):
        with atomic_write(folder / "config.json", "w") as f:
            f.write("{}")
    assert folder.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_target_that_is_a_folder_raises_and_leaves_it(tmp_path):
    target = tmp_path / "checkpoint.npz"
    target.mkdir()
    with pytest.raises(OSError):
        with atomic_write(target) as f:
            f.write(b"PK")
    assert target.is_dir() and others(tmp_path, target.name) == []


def test_a_missing_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "nowhere" / "a.txt", "w") as f:
            f.write("x")
    assert list(tmp_path.iterdir()) == []


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w', got 'a'"):
        with atomic_write(tmp_path / "a.txt", "a"):
            pass


def test_quote_path_quotes_what_a_shell_would_split():
    assert quote_path("runs/lenet") == "runs/lenet"
    assert quote_path(Path("my runs/lenet ")) == "'my runs/lenet '"


def test_atomic_write_is_the_only_rename_in_the_package():
    # Read from the source (ast): os.replace, os.rename and shutil.move appear in files.py only.
    import ast

    package = Path(__file__).resolve().parents[1] / "ack_numpy"
    renames = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and (node.value.id, node.attr) in renames):
                found.append(f"{path.relative_to(package)}:{node.lineno} {node.value.id}.{node.attr}")
    assert found and all(f.startswith("files.py:") for f in found), found


def test_a_full_disk_names_the_file_asked_for(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "results.md"
    path.write_text("old\n")
    with pytest.raises(OSError) as info:
        with atomic_write(path, "w"):
            raise OSError(errno.ENOSPC, "No space left on device")  # what a failed write raises: no file name
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_text() == "old\n" and others(tmp_path, path.name) == []


def test_a_run_lock_that_cannot_be_written_names_its_file(tmp_path, monkeypatch):
    import errno

    from ack_numpy.runs import LOCK_NAME, RunLock

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(OSError) as info:
        with RunLock(tmp_path):
            pass
    assert info.value.filename == str(tmp_path / LOCK_NAME)
