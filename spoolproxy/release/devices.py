"""Devices: the MFDs, release stations and kiosks that log users in and release jobs.

A device has a name, the queue whose printer it stands beside, and a key it sends
with every request (``X-Device-Key``). Only a SHA-256 of the key is stored: keys
are 192 random bits, so a fast hash is enough (no one guesses the preimage), and
the lookup on every request stays an inline LMDB read. The key is shown once, when
it is made; a lost key is replaced, never recovered.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from ..db import Database, WriteTxn
from ..ledger.records import check_name

DEVICES = "devices"
KEYS = "device_keys"
SCHEMA_VERSION = 1
KEY_PREFIX = "spd_"


class DeviceError(ValueError):
    pass


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


@dataclass(slots=True)
class Device:
    name: str
    printer: str  # the queue whose printer this device stands beside
    info: str = ""
    created: float = 0.0
    key_digest: bytes = b""

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "v": SCHEMA_VERSION}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "Device":
        rec = dict(rec)
        if rec.pop("v", None) != SCHEMA_VERSION:
            raise DeviceError("device record of an unknown schema")
        return cls(**rec)

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "printer": self.printer, "info": self.info, "created": self.created}


def _put_fn(device: Device, *, replace_key: bool) -> Callable[[WriteTxn], Device]:
    def fn(t: WriteTxn) -> Device:
        old = t.get(DEVICES, device.name.encode())
        if old is not None:
            old_dev = Device.from_record(old)
            if replace_key or old_dev.key_digest != device.key_digest:
                t.delete(KEYS, old_dev.key_digest)
        t.put(KEYS, device.key_digest, device.name)
        t.put(DEVICES, device.name.encode(), device.to_record())
        return device
    return fn


class Devices:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time):
        self.db = db
        self.clock = clock

    def get(self, name: str) -> Device | None:
        rec = self.db.get(DEVICES, name.encode())
        return Device.from_record(rec) if rec is not None else None

    def all(self) -> Iterator[Device]:
        for _k, rec in self.db.scan(DEVICES):
            yield Device.from_record(rec)

    def by_key(self, key: str | None) -> Device | None:
        """The device this key belongs to (two inline reads), or None."""
        if not key or len(key) > 200:
            return None
        name = self.db.get(KEYS, key_digest(key))
        return self.get(name) if name is not None else None

    def _new(self, name: str, printer: str, info: str, *, exists: bool) -> tuple[Device, str, Callable]:
        check_name("device name", name)
        if len(info) > 200:
            raise DeviceError("device info is at most 200 characters")
        if (self.get(name) is not None) != exists:
            raise DeviceError(f"there is already a device {name!r}" if not exists else f"no device {name!r}")
        key = new_key()
        dev = Device(name, printer, info, self.clock(), key_digest(key))
        return dev, key, _put_fn(dev, replace_key=True)

    async def add(self, name: str, printer: str, info: str = "") -> tuple[Device, str]:
        """A new device and its key (returned once, never stored)."""
        dev, key, fn = self._new(name, printer, info, exists=False)
        await self.db.transact(fn)
        return dev, key

    def add_now(self, name: str, printer: str, info: str = "") -> tuple[Device, str]:
        dev, key, fn = self._new(name, printer, info, exists=False)
        self.db.transact_now(fn)
        return dev, key

    def new_key_now(self, name: str) -> tuple[Device, str]:
        """Replace a device's key (the old one stops working at once)."""
        old = self.get(name)
        if old is None:
            raise DeviceError(f"no device {name!r}")
        dev, key, fn = self._new(name, old.printer, old.info, exists=True)
        dev.created = old.created
        self.db.transact_now(fn)
        return dev, key

    async def new_key(self, name: str) -> tuple[Device, str]:
        old = self.get(name)
        if old is None:
            raise DeviceError(f"no device {name!r}")
        dev, key, fn = self._new(name, old.printer, old.info, exists=True)
        dev.created = old.created
        await self.db.transact(fn)
        return dev, key

    @staticmethod
    def _remove_fn(name: str) -> Callable[[WriteTxn], bool]:
        def fn(t: WriteTxn) -> bool:
            rec = t.get(DEVICES, name.encode())
            if rec is None:
                return False
            t.delete(KEYS, Device.from_record(rec).key_digest)
            t.delete(DEVICES, name.encode())
            return True
        return fn

    async def remove(self, name: str) -> bool:
        return await self.db.transact(self._remove_fn(name))

    def remove_now(self, name: str) -> bool:
        return self.db.transact_now(self._remove_fn(name))
