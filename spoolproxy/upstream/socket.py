"""AppSocket / JetDirect ("raw port 9100") printers: ``socket://host[:port]``.

One TCP connection per document: connect, stream the bytes, shut down our write
side, then read (and discard) whatever the printer sends back until it closes the
connection. The document counts as printed when the connection closes cleanly
after all bytes were sent.

Exactly-once: the protocol has no job identity and no acknowledgement beyond the
TCP close. A raw printer discards a job whose connection breaks before the end of
its data (it never saw the end of the job), so a document whose connection failed
is sent again from its first byte. Documents already completed are recorded in
``job.extra["upstream"]["docs_done"]`` (saved after each), so a restart resends only
the document that was in flight. The remaining window - the printer printed the
whole document but the connection failed before its clean close reached us - is
at-least-once and cannot be closed with this protocol.
"""
from __future__ import annotations

import io
import os

import trio

from ..ipp.model import JobState
from ..ipp.client import describe_error
from ..spool.errors import SpoolError
from ..spool.job import Job
from .base import (Backend, DeliveryContext, JobRejected, Outcome, PollResult, PrinterOffline, printer_address,
                   progress)

DEFAULT_PORT = 9100
SENDFILE_CHUNK = 1 << 20  # per call: a checkpoint between calls (a cold page cache reads in the loop)




class SocketBackend(Backend):
    kind = "socket"

    def __init__(self, uri: str, settings) -> None:
        super().__init__(uri, settings)
        self.host, self.port, _ = printer_address(uri, DEFAULT_PORT)
        self.timeout = settings.timeout

    async def _connect(self) -> trio.SocketStream:
        try:
            with trio.fail_after(self.timeout):
                return await trio.open_tcp_stream(self.host, self.port)
        except trio.TooSlowError:
            raise PrinterOffline(f"cannot reach printer: no connection within {self.timeout:g} s",
                                 maybe_received=False) from None
        except OSError as e:
            raise PrinterOffline(f"cannot reach printer: cannot connect: {describe_error(e)}",
                                 maybe_received=False) from None

    async def deliver(self, job: Job, ctx: DeliveryContext) -> Outcome:
        prog = progress(job)
        done = int(prog.get("docs_done", 0))
        warnings = []
        for doc in job.documents[done:]:
            if ctx.canceled(job):
                break
            if job.delivery.phase != "sending":
                job.delivery.phase = "sending"
                await ctx.save(job)
            clean = await self._send_document(ctx, doc)
            if not clean:
                warnings.append(doc.number)
            prog["docs_done"] = doc.number
            if doc is not job.documents[-1]:  # after the last one the worker saves the outcome
                await ctx.save(job)
        if warnings:
            return Outcome(JobState.COMPLETED, ["job-completed-with-warnings"],
                           f"the printer did not close the connection after document(s) "
                           f"{', '.join(map(str, warnings))}; assumed printed")
        return Outcome(JobState.COMPLETED, ["job-completed-successfully"])

    async def _send_document(self, ctx: DeliveryContext, doc) -> bool:
        """Send one document on its own connection. True when the printer closed the
        connection cleanly, False when it stayed silent and open past the timeout."""
        stream = await self._connect()
        try:
            try:
                await self._send_file(stream, ctx, doc)
            except SpoolError as e:
                raise JobRejected(f"document {doc.number}: {e}", ["document-access-error"]) from None
            try:
                with trio.fail_after(self.timeout):
                    await stream.send_eof()
            except trio.TooSlowError:
                raise PrinterOffline("printer stopped reading", maybe_received=True) from None
            # drain the back channel (status, PJL echoes) until the printer closes
            while True:
                with trio.move_on_after(self.timeout) as cs:
                    data = await stream.receive_some(65536)
                if cs.cancelled_caught:
                    return False  # all data was accepted; the printer keeps the line open
                if not data:
                    return True
        except trio.TooSlowError:
            raise PrinterOffline(f"printer stopped reading for {self.timeout:g} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            # a raw printer throws away a job whose connection broke: resend it whole
            raise PrinterOffline(f"connection lost: {describe_error(e)}") from None
        finally:
            await trio.aclose_forcefully(stream)

    async def _send_file(self, stream: trio.SocketStream, ctx: DeliveryContext, doc) -> None:
        """The spool file to the socket with sendfile(2): the kernel copies from the page
        cache, with no thread hop and no Python buffer per chunk. Falls back to reading
        chunks when the store does not hand out plain files."""
        f = ctx.store.open_document(doc)  # DocumentMissing: the caller rejects the job
        if hasattr(f, "__await__"):
            f = await f
        try:
            fd = f.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            fd = -1
        if fd < 0 or not hasattr(os, "sendfile"):
            f.close()
            async with ctx.document(doc) as chunks:
                async for chunk in chunks:
                    with trio.fail_after(self.timeout):
                        await stream.send_all(chunk)
            return
        with f:
            size = os.fstat(fd).st_size
            sock = stream.socket
            offset = 0
            while offset < size:
                with trio.fail_after(self.timeout):
                    await trio.lowlevel.wait_writable(sock)
                try:
                    sent = os.sendfile(sock.fileno(), fd, offset, min(size - offset, SENDFILE_CHUNK))
                except BlockingIOError:
                    continue
                if sent == 0:
                    raise SpoolError(f"spool file {doc.path} ended at {offset} of {size} bytes")
                offset += sent

    async def probe(self) -> None:
        """Connect and close without sending anything (no job for the printer)."""
        stream = await self._connect()
        await trio.aclose_forcefully(stream)

    async def poll(self) -> PollResult | None:
        await trio.lowlevel.checkpoint()
        return None
