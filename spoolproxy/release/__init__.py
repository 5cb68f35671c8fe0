"""Secure Print and Find-Me: held jobs, device login, release (see service.py)."""
from .audit import Audit
from .devices import Device, DeviceError, Devices
from .rules import Changes
from .service import DeviceMisconfigured, Login, LoginError, Outcome, Quote, Release
from .sessions import SessionError

__all__ = ["Audit", "Changes", "Device", "DeviceError", "DeviceMisconfigured", "Devices", "Login", "LoginError",
           "Outcome", "Quote", "Release", "SessionError"]
