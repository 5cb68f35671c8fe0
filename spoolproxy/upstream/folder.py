"""Folder printer: every document becomes a file ``DIR/<jobid>-<n>-<name>.<ext>``.

Each file is written to a temporary name in DIR, fsynced, renamed into place and the
directory fsynced. The final name depends only on the job (id, document number,
name, format), so delivering a job again after a crash overwrites the same file
instead of adding a second copy: rename makes the folder printer exactly-once
without any phase bookkeeping. A reader of DIR never sees a half-written file
under a final name (temporary files start with ``.tmp-``).
"""
from __future__ import annotations

import errno
import os
import re
import threading
import unicodedata
from pathlib import Path

import trio

from ..fsutil import fsync_dir
from ..ipp.model import JobState, PrinterState
from ..spool.errors import SpoolError
from ..spool.job import Document, Job
from .base import (Backend, DeliveryContext, JobRejected, Outcome, PollResult, PrinterOffline,
                   progress)

COPY_CHUNK = 1 << 20
TMP_PREFIX = ".tmp-"
FILE_MODE = 0o600

EXTENSIONS = {
    "application/pdf": "pdf",
    "application/postscript": "ps",
    "application/vnd.hp-pcl": "pcl",
    "application/vnd.hp-pclxl": "pxl",
    "image/pwg-raster": "pwg",
    "image/urf": "urf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tif",
    "text/plain": "txt",
    "application/octet-stream": "bin",
}


def extension(fmt: str) -> str:
    return EXTENSIONS.get((fmt or "").split(";")[0].strip().lower(), "bin")


def safe_name(name: str, limit: int = 64) -> str:
    """A job name as a harmless file name part: ASCII letters, digits, '.', '_', '-'
    (others become '_'), no leading dots, at most ``limit`` characters."""
    text = unicodedata.normalize("NFKD", name or "")
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    text = re.sub(r"_+", "_", text)
    text = re.sub(r"_?\._?", ".", text)[:limit].rstrip("._-")
    return text or "job"


def file_name(job: Job, doc: Document) -> str:
    """``<jobid>-<n>-<safe job name>.<ext>``; a document-name is used when the job has
    no name. The extension is dropped from the name part when it repeats it."""
    ext = extension(doc.format)
    raw = job.name or doc.name or "job"
    if raw.lower().endswith("." + ext):
        raw = raw[: -len(ext) - 1]
    base = safe_name(raw)
    return f"{job.id}-{doc.number}-{base}.{ext}"




def _copy(src_open, directory: Path, final: str, abort: threading.Event, fsync: bool) -> int:
    """Blocking: copy the spool file into directory/final via a temp file. Returns
    the number of bytes written. Removes the temp file on any failure or abort."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{TMP_PREFIX}{final}.{os.getpid()}.{threading.get_ident()}"
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        with src_open() as src:
            while True:
                if abort.is_set():
                    raise InterruptedError("delivery aborted")
                data = src.read(COPY_CHUNK)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                size += len(data)
        if fsync:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        if abort.is_set():
            raise InterruptedError("delivery aborted")
        os.replace(tmp, directory / final)
        if fsync:
            fsync_dir(directory)
        return size
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class FolderBackend(Backend):
    kind = "folder"
    polls = True

    def __init__(self, uri: str, settings, directory: Path, *, fsync: bool = True) -> None:
        super().__init__(uri, settings)
        self.directory = Path(directory)
        self.fsync = fsync

    async def deliver(self, job: Job, ctx: DeliveryContext) -> Outcome:
        prog = progress(job)
        done = int(prog.get("docs_done", 0))
        if job.delivery.phase in ("none", "creating"):
            job.delivery.phase = "sending"
            await ctx.save(job)
        for doc in job.documents[done:]:
            if ctx.canceled(job):
                break
            name = file_name(job, doc)
            abort = threading.Event()
            try:
                await trio.to_thread.run_sync(
                    _copy, lambda d=doc: ctx.store.open_document(d), self.directory, name,
                    abort, self.fsync, abandon_on_cancel=True)
            except BaseException as e:
                abort.set()  # an abandoned thread stops at its next chunk and cleans up
                if isinstance(e, SpoolError):
                    raise JobRejected(f"document {doc.number}: {e}", ["document-access-error"]) from None
                if isinstance(e, OSError):
                    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EIO,
                                   errno.ENOENT, errno.ENOTDIR, errno.EPERM):
                        raise PrinterOffline(f"cannot write to folder {self.directory}: "
                                             f"{e.strerror or e}") from None
                    raise PrinterOffline(f"folder {self.directory}: {e}") from None
                raise
            prog["docs_done"] = doc.number
            await ctx.save(job)
        return Outcome(JobState.COMPLETED, ["job-completed-successfully"])

    async def poll(self) -> PollResult:
        def check() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "not writable")

        try:
            await trio.to_thread.run_sync(check)
        except OSError as e:
            raise PrinterOffline(f"cannot write to folder {self.directory}: {e.strerror or e}",
                                 maybe_received=False) from None
        return PollResult(PrinterState.IDLE, ["none"], "")

    async def probe(self) -> None:
        await self.poll()
