# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of spoolproxy.ledger.credit: the credit check's answer from one
balance record. The pure module is the specification; this one must answer and
raise exactly as it does.

The record is nearly always what Balance.to_record packs: a msgpack fixarray of six
with integers and booleans. That shape is read here in C, without msgpack's
unpacker, and the answer built without the interpreter; anything else (another
encoding, other types) is unpacked by msgpack as the pure module does.
"""
from libc.stdint cimport int64_t, uint64_t

import msgpack

__all__ = ["Credit", "decide", "NO_CREDIT", "NO_DISABLED", "NO_ACCOUNT"]

NO_CREDIT = "not enough credit"
NO_DISABLED = "the account is disabled"
NO_ACCOUNT = "there is no such account"

_unpackb = msgpack.unpackb


cdef class Credit:
    """The answer of the credit check."""

    cdef public object ok
    cdef public object account
    cdef public object cost
    cdef public object balance
    cdef public object available  # balance + overdraft (what a restricted account may spend)
    cdef public object restricted
    cdef public object reason  # why not, in words for the user: one of the NO_* constants

    def __init__(self, ok, account, cost, balance=0, available=0, restricted=True, reason=""):
        _fill(self, ok, account, cost, balance, available, restricted, reason)

    def _fields(self):
        return (self.ok, self.account, self.cost, self.balance, self.available, self.restricted, self.reason)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == (<Credit>other)._fields()

    def __repr__(self):
        return (f"Credit(ok={self.ok!r}, account={self.account!r}, cost={self.cost!r}, "
                f"balance={self.balance!r}, available={self.available!r}, "
                f"restricted={self.restricted!r}, reason={self.reason!r})")


cdef inline Credit _fill(Credit c, object ok, object account, object cost, object balance, object available,
                         object restricted, object reason):
    c.ok = ok
    c.account = account
    c.cost = cost
    c.balance = balance
    c.available = available
    c.restricted = restricted
    c.reason = reason
    return c


cdef inline int _read_int(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos, int64_t* out) noexcept nogil:
    """One msgpack integer that fits int64 at p[pos]; 0 when it is anything else."""
    cdef Py_ssize_t i = pos[0]
    cdef unsigned char b
    cdef uint64_t u = 0
    cdef Py_ssize_t size, k
    cdef bint signed
    if i >= n:
        return 0
    b = p[i]
    if b <= 0x7f:
        out[0] = b
        pos[0] = i + 1
        return 1
    if b >= 0xe0:
        out[0] = <int64_t>(<signed char>b)
        pos[0] = i + 1
        return 1
    if 0xcc <= b <= 0xcf:
        size, signed = 1 << (b - 0xcc), False
    elif 0xd0 <= b <= 0xd3:
        size, signed = 1 << (b - 0xd0), True
    else:
        return 0
    if i + 1 + size > n:
        return 0
    for k in range(size):
        u = (u << 8) | p[i + 1 + k]
    if signed:
        if size == 1:
            out[0] = <int64_t>(<signed char>u)
        elif size == 2:
            out[0] = <int64_t>(<short>u)
        elif size == 4:
            out[0] = <int64_t>(<int>u)
        else:
            out[0] = <int64_t>u
    else:
        if u > <uint64_t>0x7fffffffffffffff:
            return 0
        out[0] = <int64_t>u
    pos[0] = i + 1 + size
    return 1


cdef inline int _read_bool(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos, bint* out) noexcept nogil:
    cdef Py_ssize_t i = pos[0]
    if i >= n or (p[i] != 0xc2 and p[i] != 0xc3):
        return 0
    out[0] = p[i] == 0xc3
    pos[0] = i + 1
    return 1


cdef inline int _read_record(bytes raw, int64_t* balance, int64_t* overdraft, bint* restricted,
                             bint* disabled) noexcept:
    """The fields of ``[schema, balance, overdraft, restricted, disabled, last]`` packed
    as Balance.to_record packs it (a fixarray of six, integers and booleans, nothing
    after); 0 for anything else."""
    cdef const unsigned char* p = raw
    cdef Py_ssize_t n = len(raw), pos = 1
    cdef int64_t ignored
    return (n > 0 and p[0] == 0x96
            and _read_int(p, n, &pos, &ignored) and _read_int(p, n, &pos, balance)
            and _read_int(p, n, &pos, overdraft) and _read_bool(p, n, &pos, restricted)
            and _read_bool(p, n, &pos, disabled) and _read_int(p, n, &pos, &ignored) and pos == n)


def decide(raw, account, cost, rule=None):
    """May ``account``, whose balance record is ``raw`` (packed; None: no record), pay
    ``cost``? ``rule`` replaces balance plus overdraft as what may be spent."""
    cdef int64_t bal, over
    cdef bint restr, dis
    if raw is None:
        return _fill(Credit.__new__(Credit), False, account, cost, 0, 0, True, NO_ACCOUNT)
    if type(raw) is bytes and _read_record(<bytes>raw, &bal, &over, &restr, &dis):
        balance, overdraft, restricted, disabled = bal, over, restr, dis
    else:  # another encoding or other types: what msgpack makes of it, as in the pure module
        _v, balance, overdraft, restricted, disabled, _last = _unpackb(raw)
    available = balance + overdraft if rule is None else rule.available(balance, overdraft)
    if disabled:
        reason = NO_DISABLED
    elif restricted and 0 < cost and available < cost:
        reason = NO_CREDIT
    else:
        reason = ""
    return _fill(Credit.__new__(Credit), not reason, account, cost, balance, available, restricted, reason)
