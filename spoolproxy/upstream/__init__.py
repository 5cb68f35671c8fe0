"""Delivery of spooled jobs to printers: IPP, AppSocket (raw 9100), LPD and folder.

    upstream = Upstream(settings, store)
    await nursery.start(upstream.run)      # one worker + one poller per queue
    upstream.wake("demo")                  # a job of queue "demo" became deliverable
    upstream.status("demo")                # PrinterStatus of the printer behind it
    await upstream.cancel(job)             # after the server set it CANCELED and saved it
    await upstream.identify("demo", ["display"], "hello")

Backends: ``ipp.IppBackend`` (ipp://, ipps://, http://, https://),
``socket.SocketBackend`` (socket://host[:9100]), ``lpd.LpdBackend`` (lpd://host[:515]/queue),
``folder.FolderBackend`` (folder:DIR).
"""
from .backoff import Backoff
from .base import (Backend, DeliveryContext, DeliveryError, JobRejected, Outcome, PollResult,
                   PrinterOffline, PrinterStatus)
from .service import Upstream, make_backend

__all__ = [
    "Upstream", "PrinterStatus", "Backoff", "Backend", "DeliveryContext", "DeliveryError",
    "JobRejected", "Outcome", "PollResult", "PrinterOffline", "make_backend",
]
