"""Devices and the audit log in the admin API, under ``/api/v1/admin`` (admin token):

    GET    /devices                   every device (never its key)
    POST   /devices                   {"name", "printer", "info"} -> the device and its key (shown once)
    GET    /devices/{name}
    DELETE /devices/{name}
    POST   /devices/{name}/key        a new key (the old one stops working at once)
    GET    /audit                     ?event&user&job&before&limit: logins, releases, cancels, newest first
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ..release import DeviceError, Devices
from ..release.audit import EVENTS
from .app import WebContext, get_context
from .problems import Problem

router = APIRouter(tags=["admin"])


def _devices(ctx: WebContext = Depends(get_context)) -> Devices:
    if ctx.devices is None:
        raise Problem(503, "No devices", "this node keeps no devices", slug="release-unavailable")
    return ctx.devices


def check_printer(ctx: WebContext, printer: str) -> None:
    q = ctx.settings.queues.get(printer)
    if q is None or not q.printer:
        choices = ", ".join(n for n, q in ctx.settings.queues.items() if q.printer) or "none"
        raise Problem(422, "Not a printer", f"{printer!r} is not a queue with a printer (queues: {choices})",
                      slug="unknown-printer")


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=255)
    printer: str = Field(min_length=1, max_length=255, description="the queue whose printer it stands beside")
    info: str = Field("", max_length=200)


class DeviceRecord(BaseModel):
    name: str
    printer: str
    info: str
    created: float


class DeviceWithKey(DeviceRecord):
    key: str = Field(description="X-Device-Key of the device: shown only now")


@router.get("/devices", response_model=list[DeviceRecord], summary="Every device")
async def list_devices(devices: Devices = Depends(_devices)) -> list[DeviceRecord]:
    return [DeviceRecord(**d.public()) for d in devices.all()]


@router.post("/devices", response_model=DeviceWithKey, status_code=201, summary="Register a device; returns its key")
async def add_device(body: DeviceIn, devices: Devices = Depends(_devices),
                     ctx: WebContext = Depends(get_context)) -> DeviceWithKey:
    check_printer(ctx, body.printer)
    try:
        dev, key = await devices.add(body.name, body.printer, body.info)
    except (DeviceError, ValueError) as e:
        raise Problem(409 if "already" in str(e) else 422, "Device refused", str(e), slug="device-refused") from None
    return DeviceWithKey(key=key, **dev.public())


@router.get("/devices/{name}", response_model=DeviceRecord, summary="One device")
async def get_device(name: str = Path(max_length=255), devices: Devices = Depends(_devices)) -> DeviceRecord:
    dev = devices.get(name)
    if dev is None:
        raise Problem(404, "Unknown device", f"no device {name!r}", slug="unknown-device")
    return DeviceRecord(**dev.public())


@router.delete("/devices/{name}", status_code=204, summary="Remove a device (its key stops working)")
async def remove_device(name: str = Path(max_length=255), devices: Devices = Depends(_devices)) -> Response:
    if not await devices.remove(name):
        raise Problem(404, "Unknown device", f"no device {name!r}", slug="unknown-device")
    return Response(status_code=204)


@router.post("/devices/{name}/key", response_model=DeviceWithKey, summary="Give a device a new key")
async def rotate_key(name: str = Path(max_length=255), devices: Devices = Depends(_devices)) -> DeviceWithKey:
    try:
        dev, key = await devices.new_key(name)
    except DeviceError as e:
        raise Problem(404, "Unknown device", str(e), slug="unknown-device") from None
    return DeviceWithKey(key=key, **dev.public())


class AuditOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    t: float = Field(description="Unix time")
    event: str
    user: str
    device: str
    job: int
    detail: str


@router.get("/audit", response_model=list[AuditOut], summary="The audit log of logins, releases and cancels")
async def audit_log(ctx: WebContext = Depends(get_context),
                    event: str | None = Query(None, description=f"one of {', '.join(EVENTS)}"),
                    user: str | None = Query(None, max_length=255), job: int | None = Query(None, ge=1),
                    before: float | None = Query(None, description="Unix time: entries before it (paging)"),
                    limit: int = Query(100, ge=1, le=10000)) -> list[Any]:
    if event is not None and event not in EVENTS:
        raise Problem(422, "Unknown event", f"event must be one of {', '.join(EVENTS)}", slug="validation-error")
    if ctx.audit is None:
        return []
    return ctx.audit.entries(limit=limit, event=event, user=user, job=job, before=before)
