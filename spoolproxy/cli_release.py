"""The release side's commands: ``spoolproxy devices add|list|remove|new-key`` and
``spoolproxy audit``. Like the ledger's commands they open the node's LMDB directly,
also while the node runs: a device added here logs people in at once.
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, Callable

from .cli_ledger import EXIT_FAIL, EXIT_OK, _json, open_db
from .config import Settings


def _cli():
    from . import cli
    return cli


def _printer_queue(settings: Settings, printer: str) -> None:
    q = settings.queues.get(printer)
    if q is None or not q.printer:
        names = ", ".join(n for n, q in settings.queues.items() if q.printer) or "none"
        raise _cli().CommandError(f"{printer!r} is not a queue with a printer in this configuration "
                                  f"(queues with printers: {names})")


def _show_key(dev: Any, key: str, what: str) -> None:
    print(f"{what} {dev.name} at printer {dev.printer}")
    print(f"device key (shown only now; the device sends it as X-Device-Key):\n{key}")


def cmd_devices_add(args: argparse.Namespace) -> int:
    from .release import DeviceError, Devices
    settings = _cli()._store_settings(args)
    _printer_queue(settings, args.printer)
    with open_db(settings, readonly=False) as db:
        try:
            dev, key = Devices(db).add_now(args.name, args.printer, args.info or "")
        except (DeviceError, ValueError) as e:
            raise _cli().CommandError(str(e)) from None
    _show_key(dev, key, "added device")
    return EXIT_OK


def cmd_devices_new_key(args: argparse.Namespace) -> int:
    from .release import DeviceError, Devices
    with open_db(_cli()._store_settings(args), readonly=False) as db:
        try:
            dev, key = Devices(db).new_key_now(args.name)
        except DeviceError as e:
            raise _cli().CommandError(str(e)) from None
    _show_key(dev, key, "new key for device")
    return EXIT_OK


def cmd_devices_remove(args: argparse.Namespace) -> int:
    from .release import Devices
    with open_db(_cli()._store_settings(args), readonly=False) as db:
        if not Devices(db).remove_now(args.name):
            raise _cli().CommandError(f"no device {args.name!r}")
    print(f"removed device {args.name} (its key no longer works)")
    return EXIT_OK


def cmd_devices_list(args: argparse.Namespace) -> int:
    from .release import Devices
    settings = _cli()._store_settings(args)
    with open_db(settings, readonly=True) as db:
        devices = [d.public() for d in Devices(db).all()]
    if args.json:
        _json(devices)
        return EXIT_OK
    if not devices:
        print("no devices (add one: spoolproxy devices add NAME --printer QUEUE)")
    for d in devices:
        known = "" if d["printer"] in settings.queues else "  [printer not in this configuration]"
        print(f"{d['name']:<20} printer {d['printer']:<16} {d['info']}{known}")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from .release import Audit
    with open_db(_cli()._store_settings(args), readonly=True) as db:
        entries = Audit(db).entries(limit=args.limit, event=args.event, user=args.user, job=args.job)
    if args.json:
        _json(entries)
        return EXIT_OK
    for e in reversed(entries):  # oldest first, like a log
        when = dt.datetime.fromtimestamp(e["t"]).isoformat(sep=" ", timespec="seconds")
        print(f"{when}  {e['event']:<15} {e['user'] or '-':<12} {e['device'] or '-':<12} "
              f"{('job ' + str(e['job'])) if e['job'] else '':<9} {e['detail']}")
    return EXIT_OK if entries or not args.fail_empty else EXIT_FAIL


def add_parsers(sub: Any, state_options: Callable[[argparse.ArgumentParser], None]) -> None:
    from .release.audit import EVENTS
    devices = sub.add_parser("devices", help="register the MFDs and release stations that release held jobs")
    devices.set_defaults(func=None, parser=devices)
    dsub = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    sp = dsub.add_parser("add", help="register a device; prints its key once")
    state_options(sp)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--printer", "-p", required=True, metavar="QUEUE", help="the queue whose printer it is beside")
    sp.add_argument("--info", help="where it is, what it is")
    sp.set_defaults(func=cmd_devices_add)
    sp = dsub.add_parser("list", help="every device")
    state_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_devices_list)
    sp = dsub.add_parser("remove", help="remove a device (its key stops working)")
    state_options(sp)
    sp.add_argument("name", metavar="NAME")
    sp.set_defaults(func=cmd_devices_remove)
    sp = dsub.add_parser("new-key", help="give a device a new key (the old one stops working)")
    state_options(sp)
    sp.add_argument("name", metavar="NAME")
    sp.set_defaults(func=cmd_devices_new_key)

    sp = sub.add_parser("audit", help="the audit log: logins, releases, cancels, expiries")
    state_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--event", choices=EVENTS)
    sp.add_argument("--user")
    sp.add_argument("--job", type=int, metavar="ID")
    sp.add_argument("--limit", type=int, default=100, help="the newest this many")
    sp.add_argument("--fail-empty", action="store_true", help="exit 1 when nothing matches")
    sp.set_defaults(func=cmd_audit)
