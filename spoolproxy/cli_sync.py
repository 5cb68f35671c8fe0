"""Sync commands: ``spoolproxy sites add|list|remove|new-key`` on a primary, and
``spoolproxy offline status|export|import|unapplied``. Like the other admin commands
they open the node's LMDB directly, also while the node runs.

``offline export FILE`` on a site writes every journal entry the primary has not
answered yet; ``offline import FILE`` on the primary applies them, each once, so the
site's automatic replay of the same entries later changes nothing.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from .cli_ledger import EXIT_FAIL, EXIT_OK, _json, open_db

FORMAT = "spoolproxy-journal"
FORMAT_VERSION = 1


def _cli():
    from . import cli
    return cli


def _need_role(settings: Any, role: str, what: str) -> None:
    if settings.node.role != role:
        raise _cli().CommandError(f"{what} runs on a {role} node; this configuration's node.role is "
                                  f"{settings.node.role!r} (give the node's --config)")


def cmd_sites_add(args: argparse.Namespace) -> int:
    from .sync import Sites, SyncError
    settings = _cli()._store_settings(args)
    _need_role(settings, "primary", "sites add")
    with open_db(settings, readonly=False) as db:
        try:
            key = Sites(db).add_now(args.name)
        except (SyncError, ValueError) as e:
            raise _cli().CommandError(str(e)) from None
    print(f"added site {args.name}")
    print(f"site key (shown only now; put it in the site's sync.key or sync.key_file):\n{key}")
    return EXIT_OK


def cmd_sites_new_key(args: argparse.Namespace) -> int:
    from .sync import Sites, SyncError
    with open_db(_cli()._store_settings(args), readonly=False) as db:
        try:
            key = Sites(db).new_key_now(args.name)
        except SyncError as e:
            raise _cli().CommandError(str(e)) from None
    print(f"new key for site {args.name} (the old one no longer works):\n{key}")
    return EXIT_OK


def cmd_sites_remove(args: argparse.Namespace) -> int:
    from .sync import Sites
    with open_db(_cli()._store_settings(args), readonly=False) as db:
        if not Sites(db).remove_now(args.name):
            raise _cli().CommandError(f"no site {args.name!r}")
    print(f"removed site {args.name} (its key no longer works)")
    return EXIT_OK


def cmd_sites_list(args: argparse.Namespace) -> int:
    from .sync import Sites
    from .sync.primary import public
    with open_db(_cli()._store_settings(args), readonly=True) as db:
        sites = [public(s) for s in Sites(db).all()]
    if args.json:
        _json(sites)
        return EXIT_OK
    if not sites:
        print("no sites (add one: spoolproxy sites add NAME)")
    for s in sites:
        print(f"{s['name']:<20} entries applied {s.get('entries', 0):<8} last seen "
              f"{_cli()._fmt_time(s['seen']) if s.get('seen') else 'never'}")
    return EXIT_OK


def cmd_offline_status(args: argparse.Namespace) -> int:
    from .sync import journal as J
    settings = _cli()._store_settings(args)
    with open_db(settings, readonly=True) as db:
        status = {"role": settings.node.role, "site": db.get(J.META, J.SITE) or "", **J.counts(db)}
    if args.json:
        _json(status)
    else:
        for k, v in status.items():
            print(f"{k:<16} {v}")
    return EXIT_OK


def cmd_offline_export(args: argparse.Namespace) -> int:
    from .sync import journal as J
    from .sync.site import _wire
    from .sync.wire import pack
    settings = _cli()._store_settings(args)
    _need_role(settings, "site", "offline export")
    with open_db(settings, readonly=True) as db:
        site = db.get(J.META, J.SITE) or ""
        entries = [_wire(e) for e in J.entries(db, after=db.get(J.META, J.PUSHED) or 0) if not e.get("pushed")]
    if not site:
        raise _cli().CommandError("this site has never synced with its primary: it has no journal to export")
    data = pack({"format": FORMAT, "v": FORMAT_VERSION, "site": site, "entries": entries})
    tmp = f"{args.file}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, args.file)
    print(f"exported {len(entries)} journal entr{'y' if len(entries) == 1 else 'ies'} of site {site} to {args.file}")
    return EXIT_OK


def read_export(path: str) -> tuple[str, list[Any]]:
    from .sync.wire import unpack
    try:
        with open(path, "rb") as f:
            body = unpack(f.read())
    except OSError as e:
        raise _cli().CommandError(f"{path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - msgpack raises several kinds for a bad file
        raise _cli().CommandError(f"{path}: not a journal export ({type(e).__name__})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("v") != FORMAT_VERSION \
            or not isinstance(body.get("site"), str) or not isinstance(body.get("entries"), list):
        raise _cli().CommandError(f"{path}: not a {FORMAT} file of version {FORMAT_VERSION}")
    return body["site"], body["entries"]


def cmd_offline_import(args: argparse.Namespace) -> int:
    from .ledger import Ledger
    from .sync import Primary, SyncError
    settings = _cli()._store_settings(args)
    _need_role(settings, "primary", "offline import")
    site, entries = read_export(args.file)
    with open_db(settings, readonly=False) as db:
        primary = Primary(db, Ledger(db), settings.offline)
        if primary.sites.get(site) is None:
            raise _cli().CommandError(f"{args.file}: the site {site!r} is not a site of this primary")
        try:
            answers: list[dict[str, Any]] = []
            for i in range(0, len(entries), 1000):
                answers += primary.apply_now(site, entries[i:i + 1000])
        except SyncError as e:
            raise _cli().CommandError(f"{args.file}: {e}") from None
    new = sum(1 for a in answers if a["ok"] and not a.get("again"))
    again = sum(1 for a in answers if a.get("again"))
    refused = [a for a in answers if not a["ok"] and not a.get("again")]
    negative = [a for a in answers if a.get("negative")]
    print(f"site {site}: {len(answers)} entries: {new} applied, {again} applied before, {len(refused)} not "
          f"applicable (kept: spoolproxy offline unapplied), {len(negative)} took a balance below its limit")
    for a in refused:
        print(f"  not applied: {a['id']}: {a.get('reason')}")
    for a in negative:
        print(f"  below its limit: {a['account']} now {settings.ledger.money(a['balance'])} ({a['id']})")
    return EXIT_OK


def cmd_offline_unapplied(args: argparse.Namespace) -> int:
    from .sync.primary import UNAPPLIED
    with open_db(_cli()._store_settings(args), readonly=True) as db:
        rows = [rec for _k, rec in db.scan(UNAPPLIED)]
    if args.json:
        _json(rows)
        return EXIT_OK
    if not rows:
        print("every entry the sites sent was applied")
    for r in rows:
        e = r["entry"]
        print(f"{_cli()._fmt_time(r['time'])}  site {r['site']:<12} {e['id']:<50} {r['reason']}")
    return EXIT_OK if rows or not args.fail_empty else EXIT_FAIL


def add_parsers(sub: Any, state_options: Callable[[argparse.ArgumentParser], None]) -> None:
    sites = sub.add_parser("sites", help="the site nodes a primary serves, and their keys")
    sites.set_defaults(func=None, parser=sites)
    ssub = sites.add_subparsers(dest="sites_command", metavar="ACTION")
    for name, fn, helptext in (("add", cmd_sites_add, "add a site; prints its key once"),
                               ("remove", cmd_sites_remove, "remove a site (its key stops working)"),
                               ("new-key", cmd_sites_new_key, "give a site a new key")):
        sp = ssub.add_parser(name, help=helptext)
        state_options(sp)
        sp.add_argument("name", metavar="NAME")
        sp.set_defaults(func=fn)
    sp = ssub.add_parser("list", help="every site")
    state_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_sites_list)

    off = sub.add_parser("offline", help="a site's journal: status, export on the site, import on the primary")
    off.set_defaults(func=None, parser=off)
    osub = off.add_subparsers(dest="offline_command", metavar="ACTION")
    sp = osub.add_parser("status", help="the journal and the feed position")
    state_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_offline_status)
    sp = osub.add_parser("export", help="(site) write the journal entries the primary has not answered to FILE")
    state_options(sp)
    sp.add_argument("file", metavar="FILE")
    sp.set_defaults(func=cmd_offline_export)
    sp = osub.add_parser("import", help="(primary) apply a site's exported journal, each entry once")
    state_options(sp)
    sp.add_argument("file", metavar="FILE")
    sp.set_defaults(func=cmd_offline_import)
    sp = osub.add_parser("unapplied", help="(primary) entries of sites that could not be applied")
    state_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--fail-empty", action="store_true", help="exit 1 when there are none")
    sp.set_defaults(func=cmd_offline_unapplied)
