"""How a run writes its files so that nothing is lost and nothing is destroyed.

- Every path a command will write is checked against every input (through symlinks and hard
  links) and against the other outputs before anything is opened (:func:`check_paths`).
- An output is written to a temporary file beside it and renamed over it at the end, so a
  reader (or a second run writing the same file) never sees a torn file (:class:`RecordFile`).
- Output and rejects are committed together in whole records: after any stop (SIGINT, SIGTERM,
  SIGHUP, a full disk) both files end on a whole record, belong to the same point of the input,
  and the counts so far can be printed; ``classify --resume`` continues from there.
- A run never removes a file it did not create: only its own temporary files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import signal
import stat
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .textsafe import safe_name

RESUME_SUFFIX = ".resume.json"


class PathClash(Exception):
    """A path the run would write is an input, or another of its outputs."""


class WriteFailed(Exception):
    """A file could not be written (disk full, permissions, a closed pipe); names the file."""

    def __init__(self, path: str, error: OSError) -> None:
        self.path, self.error = path, error
        shown = "standard output" if path == "-" else safe_name(path)
        super().__init__(f"{shown}: could not be written ({error.strerror or error})")


class Stopped(BaseException):
    """The run was asked to stop by a signal; raised between records, never inside a write."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


# --- which paths may be written ------------------------------------------------------------------


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a link to an input is the input
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def input_files(inputs: Iterable[str]) -> list[str]:
    """The files behind the inputs: folders expanded to every file in them."""
    out = []
    for item in inputs:
        if not item or item == "-":
            continue
        p = Path(item)
        if p.is_dir():
            out.extend(str(f) for f in p.iterdir() if f.is_file())
        else:
            out.append(item)
    return out


def check_paths(inputs: Iterable[str], writes: Iterable[tuple[str, str | None]]) -> None:
    """Refuse before anything is opened: an output that is an input (same file by any name, link
    or hard link), or one file given as two outputs. ``writes`` are (what, path) pairs."""
    ins = input_files(inputs)
    by_id = {i: p for p in ins if (i := _identity(p))}
    by_real = {os.path.realpath(p): p for p in ins}
    seen: dict[Any, str] = {}
    for what, out in writes:
        if not out or out == "-":
            continue
        ident, real = _identity(out), os.path.realpath(out)
        clash = by_id.get(ident) if ident else None
        clash = clash or by_real.get(real)
        if clash is not None:
            same = "" if os.path.abspath(clash) == os.path.abspath(out) else f" ({safe_name(clash)}, by another name)"
            raise PathClash(f"{safe_name(out)}: the {what} is also an input{same}, and writing it would destroy "
                            f"the input; write the {what} to another file")
        for key in (ident, real):
            if key is not None and key in seen:
                raise PathClash(f"{safe_name(out)}: given as both the {seen[key]} and the {what}; "
                                "they must be different files")
        for key in (ident, real):
            if key is not None:
                seen[key] = what


# --- files written in whole records -------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class RecordFile:
    """One output written in whole records to a temporary file beside it, renamed at the end.

    ``add`` queues a record; ``commit`` writes the queue (all of it or, on an error, nothing: the
    file is cut back to the last commit); ``finish`` renames the file into place. A lazy file is
    only created when its first record is committed. ``resume_bytes`` starts the new file with
    that much of the existing one (``--resume``).
    """

    def __init__(self, path: str, lazy: bool = False, resume_bytes: int = 0) -> None:
        self.path = path
        self.stdout = path == "-"
        self.target = path if self.stdout else os.path.realpath(path)
        self.fd: int | None = None
        self.tmp: str | None = None
        self.pending: list[str] = []
        self.committed = 0
        self.records = 0
        self.resume_bytes = resume_bytes
        self.hash = hashlib.sha256()
        if not lazy or resume_bytes:
            self._open()

    @property
    def opened(self) -> bool:
        return self.fd is not None or (self.stdout and self.records > 0)

    def _open(self) -> None:
        if self.stdout or self.fd is not None:
            return
        target = Path(self.target)
        try:
            if target.exists() and not stat.S_ISREG(target.stat().st_mode):
                # a device or a pipe (/dev/null, a FIFO): written as it is, it cannot be replaced
                self.fd = os.open(target, os.O_WRONLY)
                return
            self.tmp = str(target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"))
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            if self.resume_bytes:
                with open(target, "rb") as old:
                    left = self.resume_bytes
                    while left and (chunk := old.read(min(left, 1 << 20))):
                        _write_all(self.fd, chunk)
                        self.hash.update(chunk)
                        left -= len(chunk)
                self.committed = self.resume_bytes
        except OSError as e:
            self.discard()
            raise WriteFailed(self.path, e) from None

    def add(self, record: str) -> None:
        self.pending.append(record)

    def commit(self) -> None:
        if not self.pending:
            return
        data = "".join(self.pending)
        if self.stdout:
            try:
                sys.stdout.write(data)
                sys.stdout.flush()
            except (BrokenPipeError, ValueError) as e:
                raise WriteFailed("-", e if isinstance(e, OSError) else OSError(errno.EPIPE, "closed")) from None
            self.records += len(self.pending)
            self.pending = []
            return
        self._open()
        raw = data.encode("utf-8", "backslashreplace")
        try:
            _write_all(self.fd, raw)
        except OSError as e:
            self.cut()
            raise WriteFailed(self.path, e) from None
        self.committed += len(raw)
        self.hash.update(raw)
        self.records += len(self.pending)
        self.pending = []

    def cut(self, size: int | None = None) -> None:
        """Back to the last commit (or ``size``): a torn record never stays in the file."""
        if self.fd is None or self.tmp is None:
            return
        size = self.committed if size is None else size
        try:
            os.ftruncate(self.fd, size)
            os.lseek(self.fd, size, os.SEEK_SET)
            self.committed = size
        except OSError:
            pass

    def finish(self) -> bool:
        """Into place: the temporary file renamed over the output. True if a file was written."""
        self.commit()
        if self.stdout or self.fd is None:
            return self.stdout
        try:
            if self.tmp:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            if self.tmp:
                os.replace(self.tmp, self.target)
                self.tmp = None
        except OSError as e:
            self.discard()
            raise WriteFailed(self.path, e) from None
        return True

    def discard(self) -> None:
        """Remove this run's temporary file (the only file a run ever removes)."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if self.tmp:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None


class Pair:
    """Output and rejects, committed together so that both always stop at the same record."""

    def __init__(self, out: RecordFile, rejects: RecordFile) -> None:
        self.out, self.rejects = out, rejects

    def commit(self) -> None:
        before = self.out.committed
        with signals_held():
            self.out.commit()
            try:
                self.rejects.commit()
            except WriteFailed:
                self.out.cut(before)
                raise

    def drop_pending(self) -> None:
        self.out.pending, self.rejects.pending = [], []

    def finish(self) -> None:
        with signals_held():
            self.commit()
            self.out.finish()
            self.rejects.finish()

    def discard(self) -> None:
        self.out.discard()
        self.rejects.discard()


# --- signals -----------------------------------------------------------------------------------

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Stopped` (SIGINT raises KeyboardInterrupt as usual), so a
    stopped run can close its files on a whole record and say what it did."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def signals_held() -> Iterator[None]:
    """No signal is handled while a commit or a rename is under way; it is handled right after."""
    sigs = {signal.SIGINT, *STOP_SIGNALS}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def exit_status(stop: BaseException) -> int:
    if isinstance(stop, Stopped):
        return 128 + stop.signum
    return 130  # KeyboardInterrupt


# --- resuming ----------------------------------------------------------------------------------


def resume_path(output: str) -> Path:
    target = Path(os.path.realpath(output))
    return target.with_name(target.name + RESUME_SUFFIX)


def write_resume(output: str, state: dict[str, Any]) -> Path:
    path = resume_path(output)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_resume(output: str) -> dict[str, Any] | None:
    path = resume_path(output)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.lstat(path).st_size > 1 << 20:
            return None
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def prefix_sha256(path: str, size: int) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            left = size
            while left and (chunk := fh.read(min(left, 1 << 20))):
                h.update(chunk)
                left -= len(chunk)
    except OSError:
        return None
    return h.hexdigest() if not left else None
