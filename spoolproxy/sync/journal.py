"""A site's side of the ledger: its journal and its view of the primary's balances.

Every transaction a site makes (charge, refund, card association, login-driven
release) is appended to the ``journal`` table with a globally unique id, the site's
name and a sequence number, in the same write transaction that applies it locally.
Online a charge is confirmed by the primary first; everything else, and everything
made offline, is sent by the replay loop (spoolproxy.sync.site) in journal order.

Balances. The site's ``balances`` table holds its *view*: the primary's balance
(from the snapshot and the change feed) plus ``pending``, the sum per account of
the site's own entries the feed has not carried back yet. The primary tags a
balance change caused by a site's entry with that entry's id, so when the feed
brings it the entry leaves ``pending`` in the same commit that takes the new
balance: the debit is counted once, never twice and never not at all. The credit
check keeps reading one record (spoolproxy.ledger.Ledger.check).

Everything here runs inside the database writer's transaction: no I/O.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from ..db import Database, WriteTxn, key_u64, u64_key
from ..ledger.records import SCHEMA_VERSION, Txn
from ..ledger.store import Applied, apply_fn

JOURNAL = "journal"  # u64 seq -> entry
IDS = "journal_ids"  # entry id -> seq (0: the feed carried it before it was journaled here)
PENDING = "pending"  # account key -> the sum of its unreflected entries (minor units)
META = "meta"
SITE = b"sync.site"  # this site's name, as the primary knows it
APPLIED = b"sync.applied"  # the seq of the last change of the primary's feed applied here
PUSHED = b"sync.pushed"  # every entry up to this seq has an answer from the primary
UNSENT = b"sync.unsent"  # how many entries have no answer yet (kept in the same commits)
# tables the primary logs and a site mirrors; balances are mirrored into the view
REPLICATED = frozenset({"users", "cards", "idents", "groups", "accounts", "account_codes", "balances", "policy"})
ENTRY_KINDS = ("txn", "card", "release")
MAX_ENTRY_BYTES = 4096


class JournalError(ValueError):
    """An entry that cannot be journaled or replayed (the message says why)."""


def entry(kind: str, entry_id: str, data: dict[str, Any], *, site: str, offline: bool,
          when: float | None = None) -> dict[str, Any]:
    """A journal entry (seq 0 until journaled)."""
    if kind not in ENTRY_KINDS:
        raise JournalError(f"entry kind must be one of {', '.join(ENTRY_KINDS)}, not {kind!r}")
    return {"v": SCHEMA_VERSION, "id": entry_id, "site": site, "seq": 0, "kind": kind,
            "time": time.time() if when is None else when, "offline": offline, "data": data}


def txn_entry(txn: Txn, *, site: str, offline: bool) -> dict[str, Any]:
    data = {"account": txn.account, "amount": txn.amount, "kind": txn.kind, "job": txn.job,
            "job_uuid": txn.job_uuid, "by": txn.by, "comment": txn.comment}
    return entry("txn", txn.id, data, site=site, offline=offline, when=txn.time)


def _next_seq(t: WriteTxn) -> int:
    last = t.last_key(JOURNAL)
    return key_u64(last) + 1 if last else 1


def _add_pending(t: WriteTxn, account: str, amount: int) -> None:
    k = account.encode()
    t.put(PENDING, k, (t.get(PENDING, k) or 0) + amount)


def _move_view(t: WriteTxn, account: str, amount: int) -> None:
    k = account.encode()
    rec = t.get("balances", k)
    if rec is not None:
        rec[1] += amount
        t.put("balances", k, rec)


def journal_fn(e: dict[str, Any], *, pushed: bool) -> Callable[[WriteTxn], dict[str, Any]]:
    """Append an entry. A transaction entry joins its account's pending sum, unless
    the primary's feed carried it already (an online charge whose change arrived
    before this commit): then its local debit is taken out of the view again."""

    def fn(t: WriteTxn) -> dict[str, Any]:
        idk = e["id"].encode()
        known = t.get(IDS, idk)
        if known:  # journaled before (a retried charge): nothing to add
            return t.get(JOURNAL, u64_key(known))
        rec = dict(e, seq=_next_seq(t), pushed=pushed, r=known == 0)
        t.put(JOURNAL, u64_key(rec["seq"]), rec)
        t.put(IDS, idk, rec["seq"])
        if not pushed:
            t.put(META, UNSENT, (t.get(META, UNSENT) or 0) + 1)
        if rec["kind"] == "txn":
            d = rec["data"]
            if known == 0:
                _move_view(t, d["account"], -d["amount"])  # the mirrored balance has it already
            else:
                _add_pending(t, d["account"], d["amount"])  # (the local apply moved the view)
        return rec

    return fn


def apply_and_journal_fn(txn_id: str, account: str, amount: int, kind: str, *, site: str, offline: bool,
                         pushed: bool = False, **kw: Any) -> Callable[[WriteTxn], Applied]:
    """apply_fn on the site's view, journaled in the same commit."""
    apply = apply_fn(txn_id, account, amount, kind, site=site, offline=offline, **kw)

    def fn(t: WriteTxn) -> Applied:
        applied = apply(t)
        if applied.new:
            journal_fn(txn_entry(applied.txn, site=site, offline=offline), pushed=pushed)(t)
        return applied

    return fn


def settle_fn(answers: list[tuple[dict[str, Any], dict[str, Any]]]) -> Callable[[WriteTxn], int]:
    """Record the primary's answers to entries sent to it. The PUSHED cursor moves over
    every answered entry (entries up to it count as sent: their records are not
    rewritten, a commit of one page instead of a thousand); one the primary could not
    apply is marked refused and leaves the pending sum (and its debit the view: the
    primary's ledger, the authority, does not have it). Returns how many were refused."""

    def fn(t: WriteTxn) -> int:
        refused = 0
        cursor = t.get(META, PUSHED) or 0
        done: set[int] = set()
        for e, answer in answers:
            seq = e["seq"]
            if seq <= cursor or seq in done:
                continue  # answered before
            done.add(seq)
            if not answer.get("ok"):
                rec = t.get(JOURNAL, u64_key(seq))
                if rec is not None and not rec.get("refused"):
                    refused += 1
                    rec["refused"] = answer.get("reason", "refused")
                    if rec["kind"] == "txn" and not rec["r"]:
                        _add_pending(t, rec["data"]["account"], -rec["data"]["amount"])
                        _move_view(t, rec["data"]["account"], -rec["data"]["amount"])
                    rec["r"] = rec["pushed"] = True
                    t.put(JOURNAL, u64_key(seq), rec)
        seq = cursor  # over the answered ones and those sent when they were made (online charges)
        while True:
            if seq + 1 in done:
                seq += 1
                continue
            nxt = t.get(JOURNAL, u64_key(seq + 1))
            if nxt is None or not nxt.get("pushed"):
                break
            seq += 1
        for s in done:
            if s > seq:  # answered out of order: marked, so that it is not sent again
                rec = t.get(JOURNAL, u64_key(s))
                if rec is not None and not rec.get("pushed"):
                    rec["pushed"] = True
                    t.put(JOURNAL, u64_key(s), rec)
        t.put(META, PUSHED, seq)
        t.put(META, UNSENT, max(0, (t.get(META, UNSENT) or 0) - len(done)))
        return refused

    return fn


def _reflect(t: WriteTxn, me: str, origin: Any) -> None:
    """A balance change the primary made for ``origin`` ([site, entry id])."""
    if not origin or origin[0] != me:
        return
    idk = str(origin[1]).encode()
    seq = t.get(IDS, idk)
    if seq is None:
        t.put(IDS, idk, 0)  # carried before journaled here: journal_fn settles it
        return
    if not seq:
        return
    rec = t.get(JOURNAL, u64_key(seq))
    if rec is None or rec.get("r") or rec["kind"] != "txn":
        return
    rec["r"] = True
    t.put(JOURNAL, u64_key(seq), rec)
    _add_pending(t, rec["data"]["account"], -rec["data"]["amount"])  # the new balance has it


def put_replicated(t: WriteTxn, table: str, key: bytes, value: Any) -> None:
    if table == "balances":
        if value is None:
            t.delete("balances", key)
            return
        pend = t.get(PENDING, key) or 0
        local = t.get("balances", key)
        mine = local[5] if local else 0  # the head of this site's own transaction chain
        t.put("balances", key, [value[0], value[1] + pend, value[2], value[3], value[4], mine])
    elif value is None:
        t.delete(table, key)
    else:
        t.put(table, key, value)


def apply_changes_fn(me: str, changes: list[list[Any]]) -> Callable[[WriteTxn], int]:
    """Apply a page of the primary's change feed ([seq, table, key, value, origin]),
    in order, and move the APPLIED cursor; changes at or below it are skipped, so a
    page fetched twice changes nothing. Returns the new cursor."""

    def fn(t: WriteTxn) -> int:
        at = t.get(META, APPLIED) or 0
        for seq, table, key, value, origin in changes:
            if seq <= at:
                continue
            if table not in REPLICATED:
                raise JournalError(f"the primary sent a change of table {table!r}")
            if table == "balances":
                _reflect(t, me, origin)
            put_replicated(t, table, bytes(key), value)
            at = seq
        t.put(META, APPLIED, at)
        return at

    return fn


def apply_snapshot_fn(me: str, snapshot: dict[str, Any]) -> Callable[[WriteTxn], int]:
    """Replace the mirrored tables with the primary's snapshot (a site's first sync)."""

    def fn(t: WriteTxn) -> int:
        for table in REPLICATED:
            t.clear(table)
        for table, rows in snapshot["tables"].items():
            if table not in REPLICATED:
                raise JournalError(f"the primary's snapshot has a table {table!r}")
            for key, value in rows:
                put_replicated(t, table, bytes(key), value)
        t.put(META, SITE, me)
        t.put(META, APPLIED, snapshot["seq"])
        return snapshot["seq"]

    return fn


# ---- reads -------------------------------------------------------------------------

def unpushed(db: Database, limit: int, *, after: int = 0) -> list[dict[str, Any]]:
    """The oldest entries without an answer from the primary (after seq ``after``), in
    journal order."""
    out = []
    for _k, rec in db.scan(JOURNAL, start=u64_key(max(db.get(META, PUSHED) or 0, after) + 1)):
        if rec.get("pushed"):
            continue
        out.append(rec)
        if len(out) >= limit:
            break
    return out


def entries(db: Database, *, after: int = 0) -> Iterator[dict[str, Any]]:
    for _k, rec in db.scan(JOURNAL, start=u64_key(after + 1)):
        yield rec


def counts(db: Database) -> dict[str, int]:
    pushed = db.get(META, PUSHED) or 0
    return {"journal": db.count(JOURNAL), "unsent": db.get(META, UNSENT) or 0, "pushed_through": pushed,
            "applied_change": db.get(META, APPLIED) or 0}
