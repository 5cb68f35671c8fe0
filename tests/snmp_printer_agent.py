#!/usr/bin/env python3
"""A printer's Printer-MIB and Host-Resources values for snmpd, as a ``pass_persist`` program.

snmpd (tests/peers.py: Snmpd) runs it once and keeps it running; on every request it
re-reads the JSON state file named on its command line, so a test can change the
printer while it runs (jam it, empty the toner, add pages).  The state file::

    {"description": "ACME LaserWriter 9000",   # hrDeviceDescr
     "device_index": 1,                        # the printer's hrDeviceIndex
     "device_status": 2,                       # hrDeviceStatus: running(2), warning(3), down(5) ...
     "printer_status": 3,                      # hrPrinterStatus: idle(3), printing(4), warmup(5) ...
     "error_bits": "0000",                     # hrPrinterDetectedErrorState as hex
     "page_counter": 1234,                     # prtMarkerLifeCount of marker 1
     "counter_unit": 7,                        # prtMarkerCounterUnit: impressions(7), sheets(8) ...
     "supplies": [{"description": "Black Toner", "type": 3, "class": 3, "unit": 19,
                   "max": 100, "level": 80}]}

The pass_persist protocol (snmpd.conf(5)): "PING" is answered "PONG"; "get" or
"getnext" followed by an OID line is answered with three lines (OID, type, value) or
"NONE"; "set" (with a third line) is answered "not-writable".  Types are those of
the pass directive: integer, gauge, counter, timeticks, ipaddress, objectid, octet
(space-separated hex), string.  No Counter64 through pass, so the page counter is a
Counter32, as in the Printer MIB.

Only the standard library: snmpd starts it with the system python3.
"""
from __future__ import annotations

import json
import sys

HR_DEVICE_ENTRY = (1, 3, 6, 1, 2, 1, 25, 3, 2, 1)
HR_PRINTER_ENTRY = (1, 3, 6, 1, 2, 1, 25, 3, 5, 1)
PRT_MARKER_ENTRY = (1, 3, 6, 1, 2, 1, 43, 10, 2, 1)
PRT_SUPPLIES_ENTRY = (1, 3, 6, 1, 2, 1, 43, 11, 1, 1)
HR_DEVICE_PRINTER = "1.3.6.1.2.1.25.3.1.5"
# the subtrees snmpd passes to this program (pass_persist lines of its config); a GETNEXT
# answer stays inside the subtree of the request, as if each were its own program
ROOTS = ((1, 3, 6, 1, 2, 1, 25, 3), (1, 3, 6, 1, 2, 1, 43))

DEFAULTS = {"description": "spoolproxy test printer", "device_index": 1, "device_status": 2,
            "printer_status": 3, "error_bits": "0000", "page_counter": 0, "counter_unit": 7,
            "supplies": []}


def load(path: str) -> dict:
    state = dict(DEFAULTS)
    try:
        with open(path) as f:
            state.update(json.load(f))
    except (OSError, ValueError):
        pass  # between writes (the writer replaces the file atomically) or not there yet
    return state


def table(state: dict) -> dict[tuple[int, ...], tuple[str, str]]:
    """Every OID this program serves -> (type, value as the pass protocol writes it)."""
    d = int(state["device_index"])
    bits = bytes.fromhex(str(state["error_bits"]))
    out: dict[tuple[int, ...], tuple[str, str]] = {
        HR_DEVICE_ENTRY + (1, d): ("integer", str(d)),
        HR_DEVICE_ENTRY + (2, d): ("objectid", HR_DEVICE_PRINTER),
        HR_DEVICE_ENTRY + (3, d): ("string", str(state["description"])),
        HR_DEVICE_ENTRY + (5, d): ("integer", str(int(state["device_status"]))),
        HR_PRINTER_ENTRY + (1, d): ("integer", str(int(state["printer_status"]))),
        HR_PRINTER_ENTRY + (2, d): ("octet", " ".join(f"{b:02x}" for b in bits)),
        PRT_MARKER_ENTRY + (3, d, 1): ("integer", str(int(state["counter_unit"]))),
        PRT_MARKER_ENTRY + (4, d, 1): ("counter", str(int(state["page_counter"]) % (1 << 32))),
    }
    for i, s in enumerate(state["supplies"], start=1):
        row = (d, i)
        out[PRT_SUPPLIES_ENTRY + (1,) + row] = ("integer", str(i))
        out[PRT_SUPPLIES_ENTRY + (2,) + row] = ("integer", "1")  # marker index
        out[PRT_SUPPLIES_ENTRY + (3,) + row] = ("integer", str(int(s.get("colorant", 0))))
        out[PRT_SUPPLIES_ENTRY + (4,) + row] = ("integer", str(int(s.get("class", 3))))
        out[PRT_SUPPLIES_ENTRY + (5,) + row] = ("integer", str(int(s.get("type", 3))))
        out[PRT_SUPPLIES_ENTRY + (6,) + row] = ("string", str(s.get("description", "")))
        out[PRT_SUPPLIES_ENTRY + (7,) + row] = ("integer", str(int(s.get("unit", 19))))
        out[PRT_SUPPLIES_ENTRY + (8,) + row] = ("integer", str(int(s.get("max", 100))))
        out[PRT_SUPPLIES_ENTRY + (9,) + row] = ("integer", str(int(s.get("level", 100))))
    return out


def parse_oid(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.strip().strip(".").split(".") if p)


def answer(command: str, oid: tuple[int, ...], state: dict) -> list[str]:
    served = table(state)
    if command == "get":
        hit = served.get(oid)
        return ["." + ".".join(map(str, oid)), *hit] if hit else ["NONE"]
    root = next((r for r in ROOTS if oid[:len(r)] == r), ())
    following = sorted(o for o in served if o > oid and o[:len(root)] == root)
    if not following:
        return ["NONE"]
    nxt = following[0]
    return ["." + ".".join(map(str, nxt)), *served[nxt]]


def main() -> None:
    path = sys.argv[1]
    out = sys.stdout
    for line in sys.stdin:
        command = line.strip().lower()
        if command == "ping":
            reply = ["PONG"]
        elif command in ("get", "getnext"):
            try:
                oid = parse_oid(sys.stdin.readline())
            except ValueError:
                reply = ["NONE"]
            else:
                reply = answer(command, oid, load(path))
        elif command == "set":
            sys.stdin.readline()
            sys.stdin.readline()
            reply = ["not-writable"]
        elif not command:
            continue
        else:
            reply = ["NONE"]
        out.write("\n".join(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
