"""core.io writes only regular files: devices, FIFOs, folders and dangling links are refused and
left alone, a symlink to a regular file is written through (the link stays), and the file gets
the umask's mode (or keeps the mode of the file it replaces)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from robustbench_lite.core.errors import OutputPathError, RobustbenchLiteError
from robustbench_lite.core.io import check_output_path, output_target, write_atomic


@pytest.fixture()
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_refuses_a_device_and_leaves_it_alone() -> None:
    before = os.stat("/dev/null")
    with pytest.raises(OutputPathError, match="/dev/null is a character device, not a regular"):
        write_atomic("/dev/null", "report")
    with pytest.raises(OutputPathError, match="character device"):
        check_output_path("/dev/null", what="--report /dev/null")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_refuses_a_fifo_without_blocking_or_replacing_it(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="is a FIFO, not a regular file"):
        write_atomic(fifo, "report")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _leftovers(tmp_path) == []


def test_refuses_a_folder_and_a_path_under_a_file(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match=r"is a folder, not a regular file.*report\.json"):
        write_atomic(tmp_path, "report")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with pytest.raises(OutputPathError, match="plain.txt is a regular file, not a folder"):
        write_atomic(plain / "report.json", "report")
    assert plain.read_text() == "x"


def test_symlink_to_a_regular_file_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    write_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == "real.json"  # the link stays
    assert real.read_text() == "new"
    assert output_target(link) == real.resolve()
    assert _leftovers(tmp_path) == []


def test_symlink_to_something_else_is_refused(tmp_path: Path) -> None:
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(OutputPathError, match="symlink to nothing"):
        write_atomic(dangling, "x")
    assert dangling.is_symlink() and not (tmp_path / "nowhere.json").exists()
    to_dev = tmp_path / "to_dev"
    to_dev.symlink_to("/dev/null")
    with pytest.raises(OutputPathError, match="symlink to a character device"):
        write_atomic(to_dev, "x")
    assert os.readlink(to_dev) == "/dev/null"


def test_new_files_get_the_umask_mode_and_rewrites_keep_the_mode(
    tmp_path: Path, umask_022: None
) -> None:
    fresh = tmp_path / "out" / "report.json"
    write_atomic(fresh, "one")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    fresh.chmod(0o640)
    write_atomic(fresh, "two")
    assert fresh.read_text() == "two" and stat.S_IMODE(fresh.stat().st_mode) == 0o640
    os.umask(0o077)
    other = tmp_path / "private.json"
    write_atomic(other, "x")
    assert stat.S_IMODE(other.stat().st_mode) == 0o600


def test_unwritable_folder_is_found_before_any_work(tmp_path: Path) -> None:
    """/proc refuses new files even to root; ``check_output_path`` probes and cleans up."""
    with pytest.raises(OutputPathError, match=r"cannot write in /proc"):
        check_output_path("/proc/rbl-report.json", what="--report /proc/rbl-report.json")
    ok = check_output_path(tmp_path / "sub" / "r.json")
    assert ok == tmp_path / "sub" / "r.json" and list(tmp_path.iterdir()) == []


def test_a_failed_write_is_one_line_and_still_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError) as info:
        write_atomic("/proc/rbl-report.json", "x")
    assert isinstance(info.value, OSError) and isinstance(info.value, RobustbenchLiteError)
    assert "\n" not in str(info.value) and "/proc/rbl-report.json" in str(info.value)
