"""The ledger's commands: ``spoolproxy users|accounts|balance|transactions ...``.

They open the node's LMDB environment directly, also while the node runs: LMDB
lets several processes read and write one environment (writers take turns on
its lock), and every change is a transaction that the node sees at its next read.
Amounts are written as people write them (1.50, -0.20) in the node's
``ledger.decimals``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import trio

from .config import Settings

EXIT_OK, EXIT_FAIL = 0, 1


def _cli():
    from . import cli
    return cli


@contextlib.contextmanager
def open_db(settings: Settings, *, readonly: bool) -> Iterator[Any]:
    """The node's LMDB environment (the node may be running)."""
    from .db import Database, DatabaseError
    cli = _cli()
    state = settings.node.state_dir
    if readonly and not (state / "db" / "data.mdb").exists():
        raise cli.CommandError(f"no node state in {state}: give the node's --state-dir or --config")
    from .sync.journal import REPLICATED
    try:  # (a primary logs ledger changes for its sites, whoever makes them)
        db = Database(state / "db", readonly=readonly, sync=settings.node.fsync,
                      changelog=REPLICATED if settings.node.role == "primary" else frozenset())
    except DatabaseError as e:
        raise cli.CommandError(str(e)) from None
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def open_ledger(settings: Settings, *, readonly: bool) -> Iterator[Any]:
    from .ledger import Ledger
    if not readonly and settings.node.role == "site":
        raise _cli().CommandError("this node is a site: users, accounts and balances are changed on its "
                                  "primary (run the command there), and the change reaches the site by itself")
    with open_db(settings, readonly=readonly) as db:
        yield Ledger(db)


def _by() -> str:
    try:
        return f"admin:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name on this system
        return "admin"


def _run(fn: Callable[..., Any], *args: Any) -> Any:
    """An async ledger operation; a refusal becomes the command's error."""
    return _refused_as_error(trio.run, fn, *args)


def _account(ledger: Any, ref: str) -> str:
    from .ledger import admin
    return _refused_as_error(admin.resolve_account, ledger, ref)


def _refused_as_error(fn: Callable[..., Any], *args: Any) -> Any:
    from .ledger import LedgerError
    try:
        return fn(*args)
    except LedgerError as e:
        raise _cli().CommandError(str(e)) from None


def _money(settings: Settings, text: str) -> int:
    try:
        return settings.ledger.parse(text)
    except ValueError as e:
        raise _cli().CommandError(str(e)) from None


def _json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _when(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _cli().CommandError(f"{text!r} is not a date or time (write 2026-11-21 or 2026-11-21T14:00)") from None
    if t.tzinfo is None:
        t = t.astimezone()
    return t.timestamp()


# -- users -------------------------------------------------------------------------

def cmd_users_import(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    try:
        data = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    except OSError as e:
        raise _cli().CommandError(f"{args.file}: cannot read: {e.strerror or e}") from None
    with open_ledger(settings, readonly=False) as ledger:
        report = _run(lambda: admin.import_users(ledger, data, parse_money=settings.ledger.parse, by=_by()))
    if args.json:
        _json(report.as_dict())
    else:
        for line, why in report.errors:
            print(f"{args.file}:{line}: {why}", file=sys.stderr)
        print(f"{len(report.created)} created, {len(report.updated)} updated, "
              f"{len(report.unchanged)} unchanged, {len(report.errors)} row(s) with errors")
    return EXIT_FAIL if report.errors else EXIT_OK


def cmd_users_list(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    with open_ledger(settings, readonly=True) as ledger:
        rows = admin.users_table(ledger)
    if args.json:
        _json(rows)
        return EXIT_OK
    m = settings.ledger.money
    for r in rows:
        flags = ",".join(f for f, on in (("restricted", r["restricted"]), ("disabled", r["disabled"])) if on)
        print(f"{r['name']:<20} {m(r['balance']):>12}  {flags or 'unrestricted':<20} {r['full_name']}")
    return EXIT_OK


def cmd_users_show(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    with open_ledger(settings, readonly=True) as ledger:
        view = admin.user_view(ledger, args.name)
    if view is None:
        raise _cli().CommandError(f"no user {args.name!r}")
    if args.json:
        _json(view)
        return EXIT_OK
    print(f"user         {view['name']}" + (f" ({view['full_name']})" if view["full_name"] else ""))
    _print_balance(view, settings.ledger.money)
    for k, label in (("email", "email"), ("identity", "identity")):
        if view[k]:
            print(f"{label:<12} {view[k]}")
    if view["groups"]:
        print(f"groups       {', '.join(view['groups'])}")
    if view["cards"]:
        print(f"cards        {', '.join(view['cards'])}")
    print(f"pin          {'set' if view['has_pin'] else '-'}    password {'set' if view['has_password'] else '-'}")
    if view["shared_accounts"]:
        print(f"may charge   {', '.join(view['shared_accounts'])}")
    return EXIT_OK


def _print_balance(view: dict[str, Any], m: Callable[[int], str]) -> None:
    """The balance lines that users show and accounts show have in common."""
    print(f"balance      {m(view['balance'])}" + (f", overdraft {m(view['overdraft'])}" if view["overdraft"] else ""))
    print(f"restricted   {'yes' if view['restricted'] else 'no'}" + ("   DISABLED" if view["disabled"] else ""))


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise _cli().CommandError("the passwords differ")
    return first


def cmd_users_set(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    ch: dict[str, Any] = {}
    for attr, key in (("full_name", "full_name"), ("email", "email"), ("identity", "identity")):
        v = getattr(args, attr)
        if v is not None:
            ch[key] = v
    if args.groups is not None:
        ch["groups"] = sorted({g.strip() for g in args.groups.split(",") if g.strip()})
    if args.card is not None:
        ch["cards"] = [c for c in args.card if c]
    if args.restricted is not None:
        ch["restricted"] = args.restricted
    if args.disabled is not None:
        ch["disabled"] = args.disabled
    if args.overdraft is not None:
        ch["overdraft"] = _money(settings, args.overdraft)
    if args.pin is not None:
        ch["pin"] = args.pin
    if args.password:
        ch["password"] = _read_password()
    if not ch and not args.create:
        raise _cli().CommandError("nothing to change (see spoolproxy users set --help)")
    with open_ledger(settings, readonly=False) as ledger:
        user = _run(lambda: admin.set_user(ledger, args.name, ch, create=args.create, by=_by()))
    print(f"user {user.name} saved")
    return EXIT_OK


# -- shared accounts ----------------------------------------------------------------

def cmd_accounts_list(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    with open_ledger(settings, readonly=True) as ledger:
        rows = [admin.account_view(ledger, a.name) for a in ledger.accounts()]
    if args.json:
        _json(rows)
        return EXIT_OK
    m = settings.ledger.money
    for r in rows:
        print(f"{r['name']:<20} {m(r['balance']):>12}  {r['code'] or '-':<10} "
              f"{'restricted' if r['restricted'] else 'unrestricted'}{'  DISABLED' if r['disabled'] else ''}")
    return EXIT_OK


def cmd_accounts_show(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    with open_ledger(settings, readonly=True) as ledger:
        view = admin.account_view(ledger, args.name)
    if view is None:
        raise _cli().CommandError(f"no shared account {args.name!r}")
    if args.json:
        _json(view)
        return EXIT_OK
    print(f"account      {view['name']}" + (f" (code {view['code']})" if view["code"] else ""))
    _print_balance(view, settings.ledger.money)
    print(f"users        {', '.join(view['users']) or '-'}")
    print(f"groups       {', '.join(view['groups']) or '-'}")
    return EXIT_OK


def cmd_accounts_set(args: argparse.Namespace) -> int:
    settings = _cli()._store_settings(args)
    ch: dict[str, Any] = {}
    if args.code is not None:
        ch["code"] = args.code
    if args.info is not None:
        ch["info"] = args.info
    if args.users is not None:
        ch["users"] = sorted({u.strip() for u in args.users.split(",") if u.strip()})
    if args.groups is not None:
        ch["groups"] = sorted({g.strip() for g in args.groups.split(",") if g.strip()})
    if args.restricted is not None:
        ch["restricted"] = args.restricted
    if args.disabled is not None:
        ch["disabled"] = args.disabled
    if args.overdraft is not None:
        ch["overdraft"] = _money(settings, args.overdraft)
    if not ch and not args.create:
        raise _cli().CommandError("nothing to change (see spoolproxy accounts set --help)")
    with open_ledger(settings, readonly=False) as ledger:
        acct = _run(lambda: ledger.update_account(args.name, ch, create=args.create))
    print(f"shared account {acct.name} saved")
    return EXIT_OK


# -- balances and transactions --------------------------------------------------------

def _balance_change(args: argparse.Namespace, kind: str) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    amount = _money(settings, args.amount)
    with open_ledger(settings, readonly=False) as ledger:
        async def go():
            account = admin.resolve_account(ledger, args.account)
            if kind == "top-up":
                return await ledger.topup(account, amount, by=_by(), comment=args.comment)
            return await ledger.adjust(account, amount, by=_by(), comment=args.comment)
        applied = _run(go)
    m = settings.ledger.money
    print(f"{applied.txn.account}: {kind} {m(applied.txn.amount)}, balance now {m(applied.txn.balance)} "
          f"(transaction {applied.txn.seq})")
    return EXIT_OK


def cmd_balance_topup(args: argparse.Namespace) -> int:
    return _balance_change(args, "top-up")


def cmd_balance_adjust(args: argparse.Namespace) -> int:
    return _balance_change(args, "adjustment")


def cmd_balance_show(args: argparse.Namespace) -> int:
    settings = _cli()._store_settings(args)
    with open_ledger(settings, readonly=True) as ledger:
        account = _account(ledger, args.account)
        bal = ledger.balance(account)
    m = settings.ledger.money
    if args.json:
        _json({"account": account, "balance": bal.balance, "overdraft": bal.overdraft,
               "restricted": bal.restricted, "disabled": bal.disabled})
    else:
        print(f"{account}: {m(bal.balance)}" + (f" (overdraft {m(bal.overdraft)})" if bal.overdraft else ""))
    return EXIT_OK


def cmd_transactions(args: argparse.Namespace) -> int:
    from .ledger import admin
    settings = _cli()._store_settings(args)
    with open_ledger(settings, readonly=True) as ledger:
        account = _account(ledger, args.account) if args.account else None
        try:
            rows = ledger.transactions(account=account, user=args.user, kind=args.kind, job=args.job,
                                       since=_when(args.since), until=_when(args.until),
                                       limit=args.limit or None)
        except ValueError as e:
            raise _cli().CommandError(str(e)) from None
    if args.json:
        _json([admin.txn_view(t) for t in rows])
        return EXIT_OK
    m = settings.ledger.money
    for t in rows:
        when = dt.datetime.fromtimestamp(t.time).strftime("%Y-%m-%d %H:%M:%S")
        job = f" job {t.job}" if t.job else ""
        print(f"{t.seq:>8} {when} {t.kind:<10} {t.account:<24} {m(t.amount):>10} -> {m(t.balance):>10}"
              f"  {t.by}{job}  {t.comment}")
    return EXIT_OK


# -- cost preview -----------------------------------------------------------------------

def preview_cost(settings: Settings, queue: str, path: str, *, copies: int = 1, sides: str | None = None,
                 gray: bool = False) -> dict[str, Any]:
    """What a document would cost on a queue, without charging anyone
    (:func:`spoolproxy.ledger.admin.preview_cost`, shared with the admin API)."""
    from .ledger import admin
    try:
        return admin.preview_cost(settings, queue, path, copies=copies, sides=sides, gray=gray)
    except admin.UncountableDocument as e:
        raise _cli().CommandError(f"{path}: {e}") from None
    except admin.LedgerError as e:
        raise _cli().CommandError(str(e)) from None


def cmd_cost(args: argparse.Namespace) -> int:
    settings = _cli()._store_settings(args)
    queue = args.queue or settings.default_queue
    result = preview_cost(settings, queue, args.file, copies=args.copies, sides=args.sides, gray=args.gray)
    if args.json:
        _json(result)
    else:
        print(f"{args.file} on {queue}: {result['pages']} page(s) of {result['format']}, "
              f"{result['copies']} cop{'y' if result['copies'] == 1 else 'ies'}")
        for line in result["breakdown"]:
            print(f"  {line}")
    return EXIT_OK


# -- the parsers ----------------------------------------------------------------------

def add_parsers(sub: Any, state_options: Callable[[argparse.ArgumentParser], None]) -> None:
    def common(sp: argparse.ArgumentParser, *, json_out: bool = True) -> None:
        state_options(sp)
        if json_out:
            sp.add_argument("--json", action="store_true", help="machine-readable output")

    def group(name: str, help: str) -> Any:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=None, parser=p)
        return p.add_subparsers(dest=f"{name}_command", metavar="ACTION")

    def yes_no(sp: argparse.ArgumentParser, dest: str, yes: str, no: str, what: str) -> None:
        g = sp.add_mutually_exclusive_group()
        g.add_argument(f"--{yes}", dest=dest, action="store_const", const=True, help=what)
        g.add_argument(f"--{no}", dest=dest, action="store_const", const=False)
        sp.set_defaults(**{dest: None})

    users = group("users", "import, list, show and change users")
    sp = users.add_parser("import", help="create or update users from a CSV file (idempotent)",
                          description="Columns (header row, any order): username (required), "
                          "full_name, email, groups (separated by ;), restricted, overdraft, card, "
                          "card2, identity, pin, password, disabled, initial_credit. An empty cell "
                          "leaves the field as it is.")
    common(sp)
    sp.add_argument("file", metavar="FILE.csv", help="the CSV file, or - for standard input")
    sp.set_defaults(func=cmd_users_import)
    sp = users.add_parser("list", help="every user with balance")
    common(sp)
    sp.set_defaults(func=cmd_users_list)
    sp = users.add_parser("show", help="one user")
    common(sp)
    sp.add_argument("name", metavar="USER")
    sp.set_defaults(func=cmd_users_show)
    sp = users.add_parser("set", help="change a user (--create to add one)")
    common(sp, json_out=False)
    sp.add_argument("name", metavar="USER")
    sp.add_argument("--create", action="store_true", help="create the user if missing")
    sp.add_argument("--full-name")
    sp.add_argument("--email")
    sp.add_argument("--identity", help="identity number (for identity number + PIN login)")
    sp.add_argument("--groups", help="comma-separated; replaces the user's groups")
    sp.add_argument("--card", action="append", help="card number (give twice for two; '' clears)")
    sp.add_argument("--overdraft", metavar="AMOUNT")
    sp.add_argument("--pin", help="new PIN (4-12 digits; '' removes it)")
    sp.add_argument("--password", action="store_true", help="set a password (prompted, or one line of stdin)")
    yes_no(sp, "restricted", "restricted", "unrestricted", "restricted users need credit to print")
    yes_no(sp, "disabled", "disable", "enable", "a disabled user cannot print or log in")
    sp.set_defaults(func=cmd_users_set)

    accounts = group("accounts", "list, show and change shared accounts")
    sp = accounts.add_parser("list", help="every shared account")
    common(sp)
    sp.set_defaults(func=cmd_accounts_list)
    sp = accounts.add_parser("show", help="one shared account")
    common(sp)
    sp.add_argument("name", metavar="ACCOUNT")
    sp.set_defaults(func=cmd_accounts_show)
    sp = accounts.add_parser("set", help="change a shared account (--create to add one)")
    common(sp, json_out=False)
    sp.add_argument("name", metavar="ACCOUNT")
    sp.add_argument("--create", action="store_true")
    sp.add_argument("--code", help="what jobs may name it by (job-account-id)")
    sp.add_argument("--info")
    sp.add_argument("--users", help="comma-separated users who may charge it")
    sp.add_argument("--groups", help="comma-separated groups whose members may charge it")
    sp.add_argument("--overdraft", metavar="AMOUNT")
    yes_no(sp, "restricted", "restricted", "unrestricted", "a restricted account needs credit")
    yes_no(sp, "disabled", "disable", "enable", "a disabled account cannot be charged")
    sp.set_defaults(func=cmd_accounts_set)

    balance = group("balance", "show, top up or adjust a balance")
    for name, fn, help in (("topup", cmd_balance_topup, "add credit (a positive amount)"),
                           ("adjust", cmd_balance_adjust, "add or remove credit (e.g. -2.50)")):
        sp = balance.add_parser(name, help=help)
        common(sp, json_out=False)
        sp.add_argument("account", metavar="ACCOUNT", help="a user name, shared:NAME or user:NAME")
        sp.add_argument("amount", metavar="AMOUNT")
        sp.add_argument("--comment", "-m", required=True, help="why (kept in the transaction log)")
        sp.set_defaults(func=fn)
    sp = balance.add_parser("show", help="an account's balance")
    common(sp)
    sp.add_argument("account", metavar="ACCOUNT")
    sp.set_defaults(func=cmd_balance_show)

    sp = sub.add_parser("cost", help="what a document would cost on a queue (nothing is charged)")
    common(sp)
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--queue", "-q", metavar="Q", help="default: the default queue")
    sp.add_argument("--copies", type=int, default=1)
    sp.add_argument("--sides", choices=("one-sided", "two-sided-long-edge", "two-sided-short-edge"))
    sp.add_argument("--gray", action="store_true", help="printed without colour")
    sp.set_defaults(func=cmd_cost)

    sp = sub.add_parser("transactions", help="the transaction log, newest first")
    common(sp)
    sp.add_argument("--account", help="a user name, shared:NAME or user:NAME")
    sp.add_argument("--user", help="the user's own account and what they charged elsewhere")
    sp.add_argument("--kind", choices=("print", "refund", "adjustment", "top-up", "offline"))
    sp.add_argument("--job", type=int, metavar="ID")
    sp.add_argument("--since", metavar="TIME", help="ISO date or time, e.g. 2026-11-01")
    sp.add_argument("--until", metavar="TIME")
    sp.add_argument("--limit", type=int, default=100, help="at most this many (0: all)")
    sp.set_defaults(func=cmd_transactions)
