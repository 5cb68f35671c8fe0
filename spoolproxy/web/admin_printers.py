"""``/api/v1/admin/printers``: the printer behind each queue as the node sees it now -
its state and reasons (with what its SNMP agent reports merged in), and the SNMP
details: whether the agent answers, the page counter and the supplies."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..ipp.model import PrinterState
from .app import WebContext, get_context
from .problems import Problem

router = APIRouter(tags=["printers"])


class SupplyOut(BaseModel):
    description: str
    kind: str = Field(description="supply type, e.g. toner, ink, wasteToner")
    level: int | None = Field(description="current level in the supply's own unit (None: unknown)")
    max: int | None
    percent: int | None = Field(description="level as a percentage of max (None: the printer does not say)")


class SnmpOut(BaseModel):
    state: Literal["ok", "unknown"] = Field(description="unknown: the agent does not answer usably")
    error: str = ""
    description: str = Field("", description="sysDescr")
    reasons: list[str] = Field(description="printer-state-reasons from hrPrinterDetectedErrorState")
    page_counter: int | None = Field(description="prtMarkerLifeCount")
    counter_unit: str = ""
    supplies: list[SupplyOut]
    updated: float = Field(description="Unix time of the poll")


class PrinterOut(BaseModel):
    queue: str
    printer: str = Field(description="the printer URI")
    state: Literal["idle", "processing", "stopped"]
    reasons: list[str] = Field(description="IPP printer-state-reasons")
    message: str
    reachable: bool | None = Field(description="None until the first poll or delivery said either way")
    snmp: SnmpOut | None = Field(description="None when the queue has no [snmp] section (or no poll yet)")


def _known(n: int) -> int | None:
    """RFC 3805's special levels (-1 other, -2 unknown, -3 some remaining) are no number."""
    return n if n >= 0 else None


def _out(ctx: WebContext, queue: str) -> PrinterOut:
    st = ctx.upstream.status(queue)
    snmp = None
    if st.snmp is not None:
        s = st.snmp
        snmp = SnmpOut(state=s.state, error=s.error, description=s.description, reasons=list(s.reasons),
                       page_counter=s.page_counter, counter_unit=s.counter_unit, updated=s.updated,
                       supplies=[SupplyOut(description=x.description, kind=x.kind, level=_known(x.level),
                                           max=_known(x.max), percent=x.percent) for x in s.supplies])
    return PrinterOut(queue=queue, printer=ctx.settings.queues[queue].printer,
                      state=PrinterState(st.state).name.lower(), reasons=list(st.reasons), message=st.message,
                      reachable=st.reachable, snmp=snmp)


def _printer_queues(ctx: WebContext) -> list[str]:
    return [name for name, q in ctx.settings.queues.items() if q.printer]


@router.get("/printers", response_model=list[PrinterOut], summary="Every printer's state, with SNMP details")
async def list_printers(ctx: WebContext = Depends(get_context)) -> list[PrinterOut]:
    return [_out(ctx, q) for q in _printer_queues(ctx)]


@router.get("/printers/{queue}", response_model=PrinterOut, summary="The printer behind one queue",
            responses={404: {"description": "No such queue, or a Find-Me queue (it has no printer)"}})
async def get_printer(queue: str, ctx: WebContext = Depends(get_context)) -> PrinterOut:
    if queue not in _printer_queues(ctx):
        raise Problem(404, "No such printer", f"no queue {queue!r} with a printer of its own", slug="not-found")
    return _out(ctx, queue)
