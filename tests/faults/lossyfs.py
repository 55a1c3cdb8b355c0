"""A filesystem that forgets what was not fsynced: a power cut you can run in a test.

kill -9 keeps whatever the kernel had buffered, so it cannot show that an acknowledged write
was on disk. This FUSE passthrough (mfusepy on libfuse 3) sits over a backing directory and
keeps every file write in the daemon's memory until the writer calls fsync or fdatasync on that
file; only then do the bytes reach the backing directory. A power loss is: SIGKILL the writers,
SIGKILL this daemon (its memory, the "page cache", is gone) and unmount; mounting again shows
exactly what had been synced (docs/architecture.md, decision 36).

The model is strict about data and keeps every name:
- file contents and growth are volatile until fsync/fdatasync of that file (like ext4's
  delayed allocation, a file created and never synced comes back empty);
- namespace operations (create, mkdir, rename, unlink, link) and truncate reach the backing
  directory at once, as a journaling filesystem commits metadata on its own; so a lost
  directory entry is never what makes a test fail, only lost data;
- stricter than ext4's default: a file written, not synced and renamed over another comes back
  empty (ext4's auto_da_alloc would flush it before such a rename; XFS and others do not).
`LossyMount.sync_all` writes every file back at once, like sync(1) or a periodic writeback.

Run as a daemon: `python lossyfs.py BACKING MOUNTPOINT` (foreground; SIGKILL is the power cut).
`LossyMount` below starts, cuts and unmounts it for the tests. The daemon dies with the test
process; if that process is SIGKILLed, its mounts stay behind, dead ("transport endpoint is not
connected"): `fusermount3 -u -z` each (grep lossyfs /proc/mounts) before reusing that basetemp.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE = 4096
SYNC_ALL = "/.lossyfs-sync-all"  # looking this name up writes every file back (see sync_all)
DAEMON = Path(__file__).resolve()


def unavailable() -> str | None:
    """Why a lossy mount cannot run here, or None: the tests skip with this reason."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse: FUSE is not available on this machine (power-loss test skipped)"
    try:
        import mfusepy  # noqa: F401
    except ImportError:
        return "mfusepy is not installed: pip install -e '.[test]' (power-loss test skipped)"
    except (OSError, AttributeError) as exc:  # mfusepy's answers to a missing/odd libfuse
        return f"libfuse is missing ({exc}): apt-get install fuse3 (power-loss test skipped)"
    if not (shutil.which("fusermount3") or shutil.which("fusermount") or os.geteuid() == 0):
        return "no fusermount3 to mount FUSE as a user: apt-get install fuse3 (test skipped)"
    return None


@dataclass
class Dirty:
    """What the writer sees of one file beyond the backing bytes: its size and unsynced pages."""

    size: int
    path: str  # where the file was last seen, to write it back at a clean unmount
    pages: dict[int, bytearray] = field(default_factory=dict)
    opened: int = 0
    orphan: bool = False  # unlinked while open: forget it at the last release


def _write_back(fd: int, d: Dirty) -> None:
    for index, page in sorted(d.pages.items()):
        start = index * PAGE
        if start < d.size:
            os.pwrite(fd, bytes(page[: d.size - start]), start)
    os.ftruncate(fd, d.size)


def _lossy_operations(root: str) -> Any:
    """The mfusepy Operations (built here so importing this module does not need mfusepy)."""
    import mfusepy

    class LossyFS(mfusepy.Operations):
        use_ns = True

        def __init__(self) -> None:
            self.root = root
            # Not `lock`: mfusepy would take an attribute of that name for the POSIX-lock
            # operation; without one the kernel keeps locks itself, as nats-server needs.
            self.mutex = threading.RLock()
            self.dirty: dict[int, Dirty] = {}  # by backing inode: survives rename
            self.files: dict[int, tuple[int, int]] = {}  # fh -> (backing fd, inode)
            self.paths: dict[int, str] = {}  # backing fd -> the path it was opened by
            self.next_fh = 1

        def _p(self, path: str) -> str:
            return os.path.join(self.root, path.lstrip("/"))

        def _write_back_all(self) -> None:
            with self.mutex:
                for ino, d in list(self.dirty.items()):
                    try:
                        fd = os.open(d.path, os.O_RDWR)
                    except OSError:
                        continue
                    try:
                        if os.fstat(fd).st_ino == ino:
                            _write_back(fd, d)
                            del self.dirty[ino]
                    finally:
                        os.close(fd)

        # --- namespace: straight to the backing directory --------------------------------
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            if path == SYNC_ALL:  # sync(1) for the tests: see LossyMount.sync_all
                self._write_back_all()
                raise mfusepy.FuseOSError(errno.ENOENT)
            st = os.lstat(self._p(path))
            attrs = {
                k: getattr(st, k)
                for k in (
                    "st_mode",
                    "st_nlink",
                    "st_uid",
                    "st_gid",
                    "st_size",
                    "st_atime_ns",
                    "st_mtime_ns",
                    "st_ctime_ns",
                )
            }
            for k in ("st_atime", "st_mtime", "st_ctime"):
                attrs[k] = attrs.pop(k + "_ns")
            with self.mutex:
                d = self.dirty.get(st.st_ino)
                if d is not None:
                    attrs["st_size"] = d.size
            return attrs

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._p(path))]

        def access(self, path: str, amode: int) -> int:
            if not os.access(self._p(path), amode):
                raise mfusepy.FuseOSError(errno.EACCES)
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self._p(path), mode)
            return 0

        def rmdir(self, path: str) -> int:
            os.rmdir(self._p(path))
            return 0

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self._p(path), mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            os.chown(self._p(path), uid, gid)
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            if times is None:
                os.utime(self._p(path))
            else:
                os.utime(self._p(path), ns=times)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            sv = os.statvfs(self._p(path))
            return {
                k: getattr(sv, k)
                for k in (
                    "f_bavail",
                    "f_bfree",
                    "f_blocks",
                    "f_bsize",
                    "f_favail",
                    "f_ffree",
                    "f_files",
                    "f_flag",
                    "f_frsize",
                    "f_namemax",
                )
            }

        def symlink(self, target: str, source: str) -> int:
            os.symlink(source, self._p(target))
            return 0

        def readlink(self, path: str) -> str:
            return os.readlink(self._p(path))

        def link(self, target: str, source: str) -> int:
            os.link(self._p(source), self._p(target))
            return 0

        def _forget_if_last(self, path: str) -> None:
            """Before the last name of an inode goes: its number may be reused."""
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return
            d = self.dirty.get(st.st_ino)
            if d is not None and st.st_nlink <= 1:
                if d.opened:
                    d.orphan = True
                else:
                    del self.dirty[st.st_ino]

        def unlink(self, path: str) -> int:
            with self.mutex:
                self._forget_if_last(self._p(path))
                os.unlink(self._p(path))
            return 0

        def rename(self, old: str, new: str) -> int:
            with self.mutex:
                self._forget_if_last(self._p(new))
                moved = self.dirty.get(os.lstat(self._p(old)).st_ino)
                os.rename(self._p(old), self._p(new))
                if moved is not None:
                    moved.path = self._p(new)
            return 0

        # --- file data: volatile until fsync ----------------------------------------------
        def _handle(self, fd: int, path: str) -> int:
            ino = os.fstat(fd).st_ino
            with self.mutex:
                self.paths[fd] = self._p(path)
                fh = self.next_fh
                self.next_fh += 1
                self.files[fh] = (fd, ino)
                d = self.dirty.get(ino)
                if d is not None:
                    d.opened += 1
            return fh

        def open(self, path: str, flags: int) -> int:
            # Writes go through us, never straight to the backing file: drop O_APPEND and
            # friends (the kernel sends the offset) and open read-write.
            fd = os.open(self._p(path), os.O_RDWR if flags & os.O_ACCMODE else os.O_RDONLY)
            with self.mutex:
                if flags & os.O_TRUNC:
                    self._truncate_locked(fd, os.fstat(fd).st_ino, 0)
            return self._handle(fd, path)

        def create(self, path: str, mode: int, flags: int = 0) -> int:
            fd = os.open(self._p(path), os.O_RDWR | os.O_CREAT | (flags & os.O_EXCL), mode)
            with self.mutex:
                if flags & os.O_TRUNC:
                    self._truncate_locked(fd, os.fstat(fd).st_ino, 0)
            return self._handle(fd, path)

        def _dirty(self, fd: int, ino: int) -> Dirty:
            d = self.dirty.get(ino)
            if d is None:
                d = self.dirty[ino] = Dirty(os.fstat(fd).st_size, self.paths[fd])
                d.opened = sum(1 for _, i in self.files.values() if i == ino)
            return d

        def _page(self, fd: int, d: Dirty, index: int) -> bytearray:
            page = d.pages.get(index)
            if page is None:
                on_disk = os.pread(fd, PAGE, index * PAGE)
                page = d.pages[index] = bytearray(on_disk.ljust(PAGE, b"\0"))
            return page

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            with self.mutex:
                fd, ino = self.files[fh]
                d = self._dirty(fd, ino)
                pos, view = offset, memoryview(data)
                while view:
                    index, at = divmod(pos, PAGE)
                    n = min(PAGE - at, len(view))
                    self._page(fd, d, index)[at : at + n] = view[:n]
                    pos, view = pos + n, view[n:]
                d.size = max(d.size, offset + len(data))
            return len(data)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            with self.mutex:
                fd, ino = self.files[fh]
                d = self.dirty.get(ino)
                if d is None:
                    return os.pread(fd, size, offset)
                end = min(offset + size, d.size)
                out = bytearray()
                pos = offset
                while pos < end:
                    index, at = divmod(pos, PAGE)
                    n = min(PAGE - at, end - pos)
                    page = d.pages.get(index)
                    if page is None:
                        chunk = os.pread(fd, n, pos).ljust(n, b"\0")
                    else:
                        chunk = bytes(page[at : at + n])
                    out += chunk
                    pos += n
                return bytes(out)

        def _truncate_locked(self, fd: int, ino: int, length: int) -> None:
            """Truncate is metadata here: it reaches the backing file at once (see above)."""
            os.ftruncate(fd, length)
            d = self.dirty.get(ino)
            if d is None:
                return
            last = length // PAGE
            for index in [i for i in d.pages if i >= last]:
                if index == last and length % PAGE:
                    d.pages[index][length % PAGE :] = bytes(PAGE - length % PAGE)
                else:
                    del d.pages[index]
            d.size = length

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            with self.mutex:
                if fh is not None:
                    fd, ino = self.files[fh]
                    self._truncate_locked(fd, ino, length)
                    return 0
                fd = os.open(self._p(path), os.O_RDWR)
                try:
                    self._truncate_locked(fd, os.fstat(fd).st_ino, length)
                finally:
                    os.close(fd)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            """The one way data becomes durable: write this file's pages to the backing file."""
            with self.mutex:
                fd, ino = self.files[fh]
                d = self.dirty.pop(ino, None)
                if d is not None:
                    _write_back(fd, d)
            return 0

        def destroy(self, path: str) -> None:
            """A clean unmount writes everything back, as a clean shutdown does (so the
            servers' own logs survive a test for reading); a power cut never gets here."""
            self._write_back_all()

        def flush(self, path: str, fh: int) -> int:
            return 0  # close(2) is not fsync(2)

        def release(self, path: str, fh: int) -> int:
            with self.mutex:
                fd, ino = self.files.pop(fh)
                d = self.dirty.get(ino)
                if d is not None:
                    d.opened -= 1
                    if d.orphan and d.opened <= 0:
                        del self.dirty[ino]
                del self.paths[fd]
                os.close(fd)
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            return 0  # namespace changes are durable already

    return LossyFS()


def serve(backing: str, mountpoint: str) -> None:
    import mfusepy

    mfusepy.FUSE(
        _lossy_operations(os.path.abspath(backing)),
        mountpoint,
        foreground=True,
        nothreads=False,
        fsname="lossyfs",
    )


# What libfuse/fusermount say when this machine (a container without CAP_SYS_ADMIN, say)
# does not let us mount: the tests skip, with that line as the reason.
REFUSED = ("Operation not permitted", "Permission denied", "fusermount", "/dev/fuse")


class MountRefused(RuntimeError):
    """The machine refused to mount FUSE (not a bug of lossyfs)."""


def mounted(path: Path) -> bool:
    """Whether something is mounted at `path`, even a dead FUSE mount (os.path.ismount says
    False when stat fails with "transport endpoint is not connected")."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


@dataclass
class LossyMount:
    """A lossy filesystem at `mountpoint` over `backing`, served by a daemon process."""

    backing: Path
    mountpoint: Path
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def mount(self, timeout: float = 15.0) -> LossyMount:
        from parindex.runtime.children import spawn

        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.log_path = self.backing.parent / f"{self.backing.name}.lossyfs.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = spawn(
            [sys.executable, str(DAEMON), str(self.backing), str(self.mountpoint)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not mounted(self.mountpoint):
            if self.proc.poll() is not None:
                said = self.log_path.read_text(errors="replace")[-2000:]
                if any(w in said for w in REFUSED):
                    raise MountRefused(said.strip().splitlines()[-1])
                raise RuntimeError(f"lossyfs exited: {said}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"lossyfs not mounted at {self.mountpoint} in {timeout} s")
            time.sleep(0.02)
        return self

    def sync_all(self) -> None:
        """What sync(1) or a server's periodic flush does: every file's writes become durable.

        FUSE passes no sync(2) to the daemon, so the daemon does it when this name is looked
        up (the kernel caches no negative lookups on this mount: libfuse's default).
        """
        try:
            os.stat(self.mountpoint / SYNC_ALL.lstrip("/"))
        except FileNotFoundError:
            return
        raise AssertionError(f"{SYNC_ALL} exists on {self.mountpoint}")

    def power_loss(self) -> None:
        """Everything not fsynced is gone: SIGKILL the daemon, then detach the dead mount."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._detach()

    def unmount(self) -> None:
        """A clean unmount (the daemon exits by itself); falls back to the power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self._detach()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._detach()

    def _detach(self) -> None:
        if not mounted(self.mountpoint):
            return
        tool = shutil.which("fusermount3") or shutil.which("fusermount")
        cmd = [tool, "-u", "-z", str(self.mountpoint)] if tool else ["umount", "-l"]
        if not tool:
            cmd.append(str(self.mountpoint))
        subprocess.run(cmd, check=False, capture_output=True, timeout=15)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
