# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of spoolproxy.ledger.credit: the credit check's answer from one
balance record. The pure module is the specification; this one must answer and
raise exactly as it does.

The record is nearly always what Balance.to_record packs: a msgpack fixarray of six
with integers and booleans. That shape is read here in C and the answer built
without the interpreter; anything else (another encoding, other types, an offline
policy's rule, a cost beyond 64 bits) takes the same path as the pure module.
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
        self.ok = ok
        self.account = account
        self.cost = cost
        self.balance = balance
        self.available = available
        self.restricted = restricted
        self.reason = reason

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


cdef inline Credit _credit(object ok, object account, object cost, object balance, object available,
                           object restricted, object reason):
    cdef Credit c = Credit.__new__(Credit)
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


def decide(raw, account, cost, rule=None):
    """May ``account``, whose balance record is ``raw`` (packed; None: no record), pay
    ``cost``? ``rule`` replaces balance plus overdraft as what may be spent."""
    cdef const unsigned char* p
    cdef Py_ssize_t n, pos = 1
    cdef int64_t v, bal, overdraft, last, c, available
    cdef bint restricted, disabled
    if raw is None:
        return _credit(False, account, cost, 0, 0, True, NO_ACCOUNT)
    if rule is None and type(raw) is bytes and type(cost) is int and -(1 << 62) <= cost <= (1 << 62):
        p = <const unsigned char*>(<bytes>raw)
        n = len(<bytes>raw)
        if (n > 0 and p[0] == 0x96
                and _read_int(p, n, &pos, &v) and _read_int(p, n, &pos, &bal)
                and _read_int(p, n, &pos, &overdraft) and _read_bool(p, n, &pos, &restricted)
                and _read_bool(p, n, &pos, &disabled) and _read_int(p, n, &pos, &last) and pos == n
                and -(1 << 62) <= bal <= (1 << 62) and -(1 << 62) <= overdraft <= (1 << 62)):
            c = cost
            available = bal + overdraft  # both within 2**62: no overflow
            if disabled:
                return _credit(False, account, cost, bal, available, restricted, NO_DISABLED)
            if restricted and 0 < c and available < c:
                return _credit(False, account, cost, bal, available, restricted, NO_CREDIT)
            return _credit(True, account, cost, bal, available, restricted, "")
    # everything else as the pure module does it
    _v, bal_, overdraft_, restricted_, disabled_, _last = _unpackb(raw)
    available_ = bal_ + overdraft_ if rule is None else rule.available(bal_, overdraft_)
    if disabled_:
        return _credit(False, account, cost, bal_, available_, restricted_, NO_DISABLED)
    if restricted_ and 0 < cost and available_ < cost:
        return _credit(False, account, cost, bal_, available_, restricted_, NO_CREDIT)
    return _credit(True, account, cost, bal_, available_, restricted_, "")
