"""One printer's status over SNMP: what a queue's poller asks.

    printer = SnmpPrinter(queue.snmp, queue_printer_host)
    status = await printer.poll()            # SnmpStatus; never raises for agent trouble
    pages = await printer.page_counter()     # prtMarkerLifeCount, or None
    await printer.aclose()

The first poll finds the printer's hrDeviceIndex (the first row of the
hrPrinterTable; 1 when the agent has none) and its first marker (the first
prtMarkerLifeCount under that device; 1 when none), and keeps them.  Each poll is
then one GET (sysDescr, hrDeviceDescr, hrDeviceStatus, hrPrinterStatus,
hrPrinterDetectedErrorState, prtMarkerLifeCount, prtMarkerCounterUnit) and a walk of
each prtMarkerSuppliesTable column of that device.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import mib
from .client import SnmpClient
from .mib import Supply
from .protocol import SnmpError

if TYPE_CHECKING:
    from ..config import SnmpSettings

__all__ = ["SnmpPrinter", "SnmpStatus"]

log = logging.getLogger(__name__)

SUPPLY_ROWS = 64  # per column: more supplies than any printer has


@dataclass
class SnmpStatus:
    state: Literal["ok", "unknown"]
    error: str = ""  # state "unknown": why there is no usable answer
    description: str = ""  # hrDeviceDescr of the printer, else sysDescr
    device_status: int | None = None  # hrDeviceStatus: running(2), warning(3), down(5), ...
    printer_status: int | None = None  # hrPrinterStatus: idle(3), printing(4), warmup(5), other(1), ...
    printer_state: int | None = None  # IPP printer-state derived: 3 idle, 4 processing, 5 stopped (None: unknown)
    reasons: list[str] = field(default_factory=list)  # IPP printer-state-reasons from the error state ([] = none)
    page_counter: int | None = None  # prtMarkerLifeCount of the first marker
    counter_unit: str = ""  # its unit: "impressions", "sheets", ...
    supplies: list[Supply] = field(default_factory=list)
    updated: float = 0.0  # time.time() of the poll


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _last_arc(oid: str, default: int) -> int:
    try:
        return int(oid.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return default


class SnmpPrinter:
    """The SNMP agent of one printer.

    ``host`` is the host of the queue's printer URI; ``settings.host``, when set, is
    polled instead (e.g. for a folder: printer, or an agent on another address)."""

    def __init__(self, settings: "SnmpSettings", host: str) -> None:
        self.settings = settings
        self.host = settings.host or host
        self.client = SnmpClient(self.host, settings.port, version=settings.version,
                                 community=settings.community, timeout=settings.timeout,
                                 retries=settings.retries)
        self.device_index: int | None = None  # hrDeviceIndex, found on the first poll
        self.marker_index = 1

    def __repr__(self) -> str:
        return f"<SnmpPrinter {self.client.address} v{self.settings.version}>"

    async def _discover(self) -> None:
        if self.device_index is not None:
            return
        rows = await self.client.walk(mib.HR_PRINTER_STATUS, limit=1)
        device = _last_arc(rows[0][0], 1) if rows else 1
        markers = await self.client.walk(f"{mib.PRT_MARKER_LIFE_COUNT}.{device}", limit=1)
        self.marker_index = _last_arc(markers[0][0], 1) if markers else 1
        self.device_index = device

    def _oids(self) -> dict[str, str]:
        d, m = self.device_index, self.marker_index
        return {
            "sys_descr": mib.SYS_DESCR,
            "device_descr": f"{mib.HR_DEVICE_DESCR}.{d}",
            "device_status": f"{mib.HR_DEVICE_STATUS}.{d}",
            "printer_status": f"{mib.HR_PRINTER_STATUS}.{d}",
            "error_state": f"{mib.HR_PRINTER_DETECTED_ERROR_STATE}.{d}",
            "life_count": f"{mib.PRT_MARKER_LIFE_COUNT}.{d}.{m}",
            "counter_unit": f"{mib.PRT_MARKER_COUNTER_UNIT}.{d}.{m}",
        }

    async def poll(self) -> SnmpStatus:
        """The printer's status now; state "unknown" (with the reason in ``error``) when
        the agent does not answer, answers garbage or an error, or has no printer entry."""
        updated = time.time()
        try:
            await self._discover()
            oids = self._oids()
            got = await self.client.get(oids.values())
            rows: list[tuple[str, Any]] = []
            for column in mib.SUPPLY_COLUMNS:
                rows += await self.client.walk(f"{column}.{self.device_index}", limit=SUPPLY_ROWS)
        except SnmpError as e:
            log.debug("%r: %s", self, e)
            return SnmpStatus(state="unknown", error=str(e), updated=updated)
        values = {name: got.get(oid) for name, oid in oids.items()}
        device_status = _int(values["device_status"])
        printer_status = _int(values["printer_status"])
        bits = values["error_state"]
        reasons = mib.error_reasons(bits) if isinstance(bits, bytes) else []
        status = SnmpStatus(
            state="ok",
            description=mib.text(values["device_descr"]) or mib.text(values["sys_descr"]),
            device_status=device_status,
            printer_status=printer_status,
            reasons=reasons,
            page_counter=_int(values["life_count"]),
            counter_unit=mib.counter_unit(values["counter_unit"]),
            supplies=mib.parse_supplies(rows, self.device_index),
            updated=updated,
        )
        if device_status is None and printer_status is None and not isinstance(bits, bytes):
            status.state = "unknown"
            status.error = (f"{self.client.address} answers but has no printer status "
                            f"(no hrDeviceStatus/hrPrinterStatus.{self.device_index})")
        else:
            status.printer_state = mib.printer_state(device_status, printer_status, reasons)
        return status

    async def page_counter(self) -> int | None:
        """prtMarkerLifeCount of the printer's first marker (one GET, after the indexes
        are known), or None when the agent does not answer with one."""
        try:
            await self._discover()
            oid = f"{mib.PRT_MARKER_LIFE_COUNT}.{self.device_index}.{self.marker_index}"
            value = (await self.client.get([oid]))[oid]
        except SnmpError as e:
            log.debug("%r: page counter: %s", self, e)
            return None
        return _int(value)

    async def aclose(self) -> None:
        await self.client.aclose()
