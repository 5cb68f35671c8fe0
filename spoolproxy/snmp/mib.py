"""What a printer's SNMP values mean: OIDs, the error-state bits, IPP state, supplies. Pure.

Sources:

* RFC 2790 (HOST-RESOURCES-MIB): hrDeviceStatus, hrPrinterStatus and
  hrPrinterDetectedErrorState.  The error state is an OCTET STRING of condition bits;
  bit 0 is the most significant bit of the first octet, bit 8 the most significant bit
  of the second.  RFC 2790 defines bits 0-7; bits 8-14 were added with the Printer
  MIB v2 work and are listed in the HOST-RESOURCES-MIB as published with RFC 3805.
* RFC 3805 (Printer MIB v2): prtMarkerLifeCount / prtMarkerCounterUnit (the page
  counter) and prtMarkerSuppliesTable, with its special levels -1 (other: no
  restriction), -2 (unknown) and -3 (some remaining, at least one unit).
* RFC 8011 section 5.4.12 (printer-state-reasons, with the "-report", "-warning" and
  "-error" suffixes), the IANA IPP registry of later keywords (PWG 5100.9 and the
  2013 registrations such as marker-supply-missing), and CUPS's backend (which maps
  the same bits, mostly to softer severities) as a point of comparison.

The mapping of the error-state bits (``ERROR_STATE_BITS``):

    bit  condition            printer-state-reasons            keyword from
    0    lowPaper             media-low-warning                RFC 8011
    1    noPaper              media-empty-error                RFC 8011
    2    lowToner             toner-low-warning                RFC 8011
    3    noToner              toner-empty-error                RFC 8011
    4    doorOpen             door-open-error                  RFC 8011
    5    jammed               media-jam-error                  RFC 8011
    6    offline              offline-report                   CUPS (no registered keyword)
    7    serviceRequested     other-warning                    RFC 8011 "other" (none specific)
    8    inputTrayMissing     input-tray-missing-error         RFC 8011
    9    outputTrayMissing    output-tray-missing-error        RFC 8011
    10   markerSupplyMissing  marker-supply-missing-error      IANA registry (2013)
    11   outputNearFull       output-area-almost-full-warning  RFC 8011
    12   outputFull           output-area-full-error           RFC 8011
    13   inputTrayEmpty       media-needed-warning             RFC 8011 ("a tray has run out of media")
    14   overduePreventMaint  other-warning                    RFC 8011 "other" (none specific)

"offline" is a report, not an error: RFC 2790 makes an offline printer's
hrDeviceStatus down(5), and that (not the bit) is what stops it here.  A tray that is
empty while others still feed is a warning; a printer that cannot go on also sets
noPaper.  Supply levels never add reasons here (no invented "toner-low" from a
percentage): the reasons are the agent's own error state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .protocol import parse_oid

__all__ = [
    "COUNTER_UNITS", "ERROR_STATE_BITS", "HR_DEVICE_DESCR", "HR_DEVICE_STATUS", "HR_DEVICE_STATUS_NAMES",
    "HR_PRINTER_DETECTED_ERROR_STATE", "HR_PRINTER_STATUS", "HR_PRINTER_STATUS_NAMES", "IDLE",
    "PROCESSING", "PRT_MARKER_COUNTER_UNIT", "PRT_MARKER_LIFE_COUNT", "PRT_MARKER_SUPPLIES_CLASS",
    "PRT_MARKER_SUPPLIES_DESCRIPTION", "PRT_MARKER_SUPPLIES_ENTRY", "PRT_MARKER_SUPPLIES_LEVEL",
    "PRT_MARKER_SUPPLIES_MAX_CAPACITY", "PRT_MARKER_SUPPLIES_TYPE", "PRT_MARKER_SUPPLIES_UNIT",
    "REASON_KEYWORDS", "STOPPED", "SUPPLY_CLASSES", "SUPPLY_COLUMNS", "SUPPLY_TYPES", "SUPPLY_UNITS",
    "SYS_DESCR", "Supply", "counter_unit", "error_reasons", "parse_supplies", "printer_state", "text",
]

# -- OIDs (a column: append the row index, e.g. f"{HR_DEVICE_STATUS}.1") ---------------------

SYS_DESCR = "1.3.6.1.2.1.1.1.0"                       # SNMPv2-MIB sysDescr.0
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3"            # .hrDeviceIndex
HR_DEVICE_STATUS = "1.3.6.1.2.1.25.3.2.1.5"           # .hrDeviceIndex
HR_PRINTER_STATUS = "1.3.6.1.2.1.25.3.5.1.1"          # .hrDeviceIndex
HR_PRINTER_DETECTED_ERROR_STATE = "1.3.6.1.2.1.25.3.5.1.2"  # .hrDeviceIndex
PRT_MARKER_COUNTER_UNIT = "1.3.6.1.2.1.43.10.2.1.3"   # .hrDeviceIndex.prtMarkerIndex
PRT_MARKER_LIFE_COUNT = "1.3.6.1.2.1.43.10.2.1.4"     # .hrDeviceIndex.prtMarkerIndex
PRT_MARKER_SUPPLIES_ENTRY = "1.3.6.1.2.1.43.11.1.1"   # .column.hrDeviceIndex.prtMarkerSuppliesIndex
PRT_MARKER_SUPPLIES_CLASS = PRT_MARKER_SUPPLIES_ENTRY + ".4"
PRT_MARKER_SUPPLIES_TYPE = PRT_MARKER_SUPPLIES_ENTRY + ".5"
PRT_MARKER_SUPPLIES_DESCRIPTION = PRT_MARKER_SUPPLIES_ENTRY + ".6"
PRT_MARKER_SUPPLIES_UNIT = PRT_MARKER_SUPPLIES_ENTRY + ".7"
PRT_MARKER_SUPPLIES_MAX_CAPACITY = PRT_MARKER_SUPPLIES_ENTRY + ".8"
PRT_MARKER_SUPPLIES_LEVEL = PRT_MARKER_SUPPLIES_ENTRY + ".9"
# the supplies columns a poll walks
SUPPLY_COLUMNS = (PRT_MARKER_SUPPLIES_DESCRIPTION, PRT_MARKER_SUPPLIES_TYPE, PRT_MARKER_SUPPLIES_CLASS,
                  PRT_MARKER_SUPPLIES_UNIT, PRT_MARKER_SUPPLIES_MAX_CAPACITY, PRT_MARKER_SUPPLIES_LEVEL)

# -- enumerations ----------------------------------------------------------------------------

HR_DEVICE_STATUS_NAMES = {1: "unknown", 2: "running", 3: "warning", 4: "testing", 5: "down"}
HR_PRINTER_STATUS_NAMES = {1: "other", 2: "unknown", 3: "idle", 4: "printing", 5: "warmup"}
DEVICE_DOWN = 5
PRINTING, WARMUP = 4, 5

# IPP printer-state (RFC 8011 section 5.4.11)
IDLE, PROCESSING, STOPPED = 3, 4, 5

ERROR_STATE_BITS: tuple[tuple[int, str, str], ...] = (
    (0, "lowPaper", "media-low-warning"),
    (1, "noPaper", "media-empty-error"),
    (2, "lowToner", "toner-low-warning"),
    (3, "noToner", "toner-empty-error"),
    (4, "doorOpen", "door-open-error"),
    (5, "jammed", "media-jam-error"),
    (6, "offline", "offline-report"),
    (7, "serviceRequested", "other-warning"),
    (8, "inputTrayMissing", "input-tray-missing-error"),
    (9, "outputTrayMissing", "output-tray-missing-error"),
    (10, "markerSupplyMissing", "marker-supply-missing-error"),
    (11, "outputNearFull", "output-area-almost-full-warning"),
    (12, "outputFull", "output-area-full-error"),
    (13, "inputTrayEmpty", "media-needed-warning"),
    (14, "overduePreventMaint", "other-warning"),
)
REASON_KEYWORDS = frozenset(k for _, _, k in ERROR_STATE_BITS)

# PrtMarkerSuppliesTypeTC (IANA-PRINTER-MIB) -> the IPP "marker-types" keyword
SUPPLY_TYPES = {
    1: "other", 2: "unknown", 3: "toner", 4: "waste-toner", 5: "ink", 6: "ink-cartridge",
    7: "ink-ribbon", 8: "waste-ink", 9: "opc", 10: "developer", 11: "fuser-oil", 12: "solid-wax",
    13: "ribbon-wax", 14: "waste-wax", 15: "fuser", 16: "corona-wire", 17: "fuser-oil-wick",
    18: "cleaner-unit", 19: "fuser-cleaning-pad", 20: "transfer-unit", 21: "toner-cartridge",
    22: "fuser-oiler", 23: "water", 24: "waste-water", 25: "glue-water-additive", 26: "waste-paper",
    27: "binding-supply", 28: "banding-supply", 29: "stitching-wire", 30: "shrink-wrap",
    31: "paper-wrap", 32: "staples", 33: "inserts", 34: "covers", 35: "matte-toner", 36: "matte-ink",
}
# PrtMarkerSuppliesClassTC
SUPPLY_CLASSES = {1: "other", 3: "supplyThatIsConsumed", 4: "receptacleThatIsFilled"}
# PrtMarkerSuppliesSupplyUnitTC
SUPPLY_UNITS = {
    1: "other", 2: "unknown", 3: "tenThousandthsOfInches", 4: "micrometers", 7: "impressions",
    8: "sheets", 11: "hours", 12: "thousandthsOfOunces", 13: "tenthsOfGrams",
    14: "hundrethsOfFluidOunces", 15: "tenthsOfMilliliters", 16: "feet", 17: "meters", 18: "items",
    19: "percent",
}
# PrtMarkerCounterUnitTC (the unit of prtMarkerLifeCount)
COUNTER_UNITS = {
    3: "tenThousandthsOfInches", 4: "micrometers", 5: "characters", 6: "lines", 7: "impressions",
    8: "sheets", 9: "dotRow", 11: "hours", 16: "feet", 17: "meters",
}


# -- error state and printer state -----------------------------------------------------------


def error_reasons(bits: bytes) -> list[str]:
    """hrPrinterDetectedErrorState -> IPP printer-state-reasons, in bit order, no duplicates.

    A one-octet value (older agents) carries bits 0-7 only; octets beyond the second
    carry no defined conditions and are ignored; b"" is no condition."""
    out: list[str] = []
    for bit, _, keyword in ERROR_STATE_BITS:
        octet = bit // 8
        if octet < len(bits) and bits[octet] & (0x80 >> (bit % 8)) and keyword not in out:
            out.append(keyword)
    return out


def printer_state(hr_device_status: int | None, hr_printer_status: int | None, reasons: Iterable[str]) -> int:
    """IPP printer-state from the Host Resources values and the reasons.

    stopped (5): any "-error" reason, or hrDeviceStatus down(5);
    processing (4): hrPrinterStatus printing(4) or warmup(5);
    idle (3): anything else (None: not answered)."""
    if hr_device_status == DEVICE_DOWN or any(r.endswith("-error") for r in reasons):
        return STOPPED
    if hr_printer_status in (PRINTING, WARMUP):
        return PROCESSING
    return IDLE


def counter_unit(value: Any) -> str:
    """prtMarkerCounterUnit -> its keyword ("impressions", "sheets", ...); "" if not answered."""
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    return COUNTER_UNITS.get(value, "other")


def text(value: Any) -> str:
    """An OCTET STRING for people (sysDescr, supply descriptions): UTF-8, or Latin-1 when
    it is not UTF-8 (older agents), without the NULs and blanks some pad it with."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            decoded = raw.decode("latin-1")
        return decoded.replace("\x00", "").strip()
    if isinstance(value, str):
        return value.strip()
    return ""


# -- supplies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Supply:
    """One row of prtMarkerSuppliesTable.

    ``level`` and ``max`` are the agent's numbers in ``unit``, including RFC 3805's
    special values (-1 other/no restriction, -2 unknown, -3 some remaining);
    ``percent`` is level/max as 0-100, or None when either is special or max is 0.
    For a receptacle (``supply_class == "receptacleThatIsFilled"``, e.g. waste toner)
    the level is how full it is."""

    index: int
    description: str
    kind: str                 # IPP marker-types keyword: "toner", "waste-toner", "ink-cartridge", ...
    level: int
    max: int
    percent: int | None
    unit: str = "unknown"     # PrtMarkerSuppliesSupplyUnitTC label: "percent", "impressions", ...
    supply_class: str = "other"


def _percent(level: int, maximum: int) -> int | None:
    if level < 0 or maximum <= 0:
        return None
    return min(100, level * 100 // maximum)


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def parse_supplies(varbinds: Iterable[tuple[str, Any]], device_index: int | None = None) -> list[Supply]:
    """prtMarkerSuppliesTable varbinds (the walks of its columns, in any order) -> supplies
    sorted by index.  Rows of other devices are left out when ``device_index`` is given;
    OIDs that are not table cells are ignored; a missing cell reads as unknown."""
    entry = parse_oid(PRT_MARKER_SUPPLIES_ENTRY)
    rows: dict[int, dict[int, Any]] = {}
    for oid, value in varbinds:
        try:
            arcs = parse_oid(oid)
        except ValueError:
            continue
        if len(arcs) != len(entry) + 3 or arcs[:len(entry)] != entry:
            continue
        column, device, index = arcs[len(entry):]
        if device_index is not None and device != device_index:
            continue
        rows.setdefault(index, {})[column] = value
    out = []
    for index in sorted(rows):
        cells = rows[index]
        level = _int(cells.get(9), -2)
        maximum = _int(cells.get(8), -2)
        kind = _int(cells.get(5), 2)
        out.append(Supply(
            index=index,
            description=text(cells.get(6)),
            kind=SUPPLY_TYPES.get(kind, "other"),
            level=level,
            max=maximum,
            percent=_percent(level, maximum),
            unit=SUPPLY_UNITS.get(_int(cells.get(7), 2), "other"),
            supply_class=SUPPLY_CLASSES.get(_int(cells.get(4), 1), "other"),
        ))
    return out
