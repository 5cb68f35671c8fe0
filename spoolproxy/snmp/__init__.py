"""Printer status and page counters over SNMP (v1 and v2c, community).

What a queue gets from its printer's SNMP agent, beside what IPP tells: the state
and the reasons of a printer that IPP does not reach (AppSocket, LPD, folder
devices), its supplies, and its page counter (prtMarkerLifeCount), which tells how
many impressions a delivered job really took.

    printer = SnmpPrinter(queue.snmp, host_of_the_printer_uri)
    status = await printer.poll()          # SnmpStatus: state "ok" or "unknown" (+ error)
    pages = await printer.page_counter()   # int or None
    await printer.aclose()

Layers: ``protocol`` builds and decodes the messages (sans-IO, pysnmp's message
types and pyasn1's BER codec); ``client`` sends them over trio UDP sockets;
``mib`` says what the values mean (IPP printer-state, printer-state-reasons,
supplies); ``monitor`` is the printer.  Why not pysnmp's own engine: see
``protocol``'s docstring.
"""
from .client import SnmpClient, SnmpTimeout
from .mib import Supply, error_reasons, printer_state
from .monitor import SnmpPrinter, SnmpStatus
from .protocol import SnmpError, SnmpErrorStatus, SnmpMismatch

__all__ = [
    "SnmpClient", "SnmpError", "SnmpErrorStatus", "SnmpMismatch", "SnmpPrinter", "SnmpStatus",
    "SnmpTimeout", "Supply", "error_reasons", "printer_state",
]
