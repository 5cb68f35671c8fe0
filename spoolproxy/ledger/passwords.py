"""Salted slow hashes for passwords and PINs (hashlib.scrypt).

A stored hash is one self-describing string, ``scrypt$N$r$p$SALT$HASH`` (salt and
hash in unpadded base64), so the cost can be raised later without breaking the
hashes already stored: verify reads the parameters from the string. A site node
caches these strings to log users in offline; the secrets themselves are never
stored or logged.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

# N=2**14, r=8: ~16 MiB and ~30-50 ms per hash on a current core; a 4-digit PIN
# space then takes minutes per user to search, a password far longer.
N, R, P = 1 << 14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
PREFIX = "scrypt"
_MAXMEM = 64 << 20


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def hash_secret(secret: str, *, n: int = N, r: int = R, p: int = P) -> str:
    if not isinstance(secret, str) or not secret:
        raise ValueError("a password or PIN must be a non-empty string")
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                            dklen=HASH_BYTES)
    return f"{PREFIX}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """True if secret matches the stored hash (constant-time compare); False for a
    wrong secret, an empty stored hash or a malformed one."""
    if not stored or not isinstance(secret, str) or not secret:
        return False
    try:
        prefix, n, r, p, salt, digest = stored.split("$")
        if prefix != PREFIX:
            return False
        n_, r_, p_ = int(n), int(r), int(p)
        if not (1 < n_ <= 1 << 20 and n_ & (n_ - 1) == 0 and 0 < r_ <= 32 and 0 < p_ <= 16):
            return False
        salt_b, want = _unb64(salt), _unb64(digest)
        got = hashlib.scrypt(secret.encode(), salt=salt_b, n=n_, r=r_, p=p_, maxmem=_MAXMEM,
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def is_hash(value: str) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX + "$") and value.count("$") == 5
