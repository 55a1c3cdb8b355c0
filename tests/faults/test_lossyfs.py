"""The lossy filesystem itself: what fsync made durable survives the cut, nothing else does.

The power-loss test (test_power_loss.py) is only as good as this layer (docs/architecture.md,
decision 36), so its model is checked on plain files first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.lossyfs import LossyMount, MountRefused, mounted, unavailable

_MISSING = unavailable()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


@pytest.fixture
def lossy(tmp_path: Path):
    m = LossyMount(tmp_path / "disk", tmp_path / "mnt")
    try:
        m.mount()
    except MountRefused as exc:
        pytest.skip(f"this machine does not let the test mount FUSE: {exc}")
    try:
        yield m
    finally:
        m.unmount()


def _write(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_the_cut_keeps_what_was_fsynced_and_nothing_else(lossy: LossyMount) -> None:
    mnt = lossy.mountpoint
    (mnt / "dir").mkdir()
    _write(mnt / "dir" / "log", b"synced " * 2000, sync=True)  # crosses page boundaries
    _write(mnt / "dir" / "log", b"lost", sync=False)
    _write(mnt / "never", b"never synced", sync=False)
    _write(mnt / "moved", b"synced, then renamed", sync=True)
    os.rename(mnt / "moved", mnt / "dir" / "renamed")
    _write(mnt / "dir" / "renamed", b" and more", sync=False)
    assert (mnt / "dir" / "log").read_bytes().endswith(b"lost")  # the writer sees its writes
    assert (mnt / "never").read_bytes() == b"never synced"

    lossy.power_loss()
    assert not mounted(mnt)
    lossy.mount()

    assert (mnt / "dir" / "log").read_bytes() == b"synced " * 2000
    assert (mnt / "never").read_bytes() == b""  # the name survived, its data did not
    assert (mnt / "dir" / "renamed").read_bytes() == b"synced, then renamed"


def test_a_clean_unmount_writes_everything_back(lossy: LossyMount) -> None:
    _write(lossy.mountpoint / "f", b"written, closed, never synced", sync=False)
    lossy.unmount()
    assert (lossy.backing / "f").read_bytes() == b"written, closed, never synced"
    lossy.mount()
    assert (lossy.mountpoint / "f").read_bytes() == b"written, closed, never synced"


def test_truncate_then_write_reads_zeros_between(lossy: LossyMount) -> None:
    path = lossy.mountpoint / "t"
    _write(path, b"x" * 100, sync=True)
    with open(path, "r+b") as f:
        f.truncate(10)
        f.seek(50)
        f.write(b"y")
        f.flush()
        assert path.read_bytes() == b"x" * 10 + b"\0" * 40 + b"y"
        os.fsync(f.fileno())
    lossy.power_loss()
    lossy.mount()
    assert path.read_bytes() == b"x" * 10 + b"\0" * 40 + b"y"


def test_sync_all_makes_every_file_durable(lossy: LossyMount) -> None:
    _write(lossy.mountpoint / "a", b"before the sync", sync=False)
    lossy.sync_all()
    _write(lossy.mountpoint / "a", b", after it", sync=False)
    lossy.power_loss()
    lossy.mount()
    assert (lossy.mountpoint / "a").read_bytes() == b"before the sync"
