"""LPD (RFC 1179): the sans-IO protocol (``protocol``), the node's LPD listener
(``server.LpdServer``) and the client that delivers to LPD printers (``client``).

    server = LpdServer(settings, printer_service)
    listeners = await nursery.start(server.serve)
"""
from .server import LpdServer

__all__ = ["LpdServer"]
