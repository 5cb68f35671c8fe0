"""``GET /metrics``: Prometheus text exposition (prometheus-client), no authentication:
it shows states and counts, never names or money.

Values are read from the node when scraped (a collector, not counters kept on the
side), so they cannot drift from what the admin API shows.
"""
from __future__ import annotations

from typing import Any, Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .app import WebContext, get_context

router = APIRouter(tags=["node"])


class _NodeCollector:
    def __init__(self, ctx: WebContext):
        self.ctx = ctx

    def collect(self) -> Iterator[Any]:
        yield from self._printers()
        site = self.ctx.site
        if site is not None:
            st = site.status()
            yield GaugeMetricFamily("spoolproxy_sync_online", "1 while this site's primary answers, else 0",
                                    value=1 if st["online"] else 0)
            yield GaugeMetricFamily("spoolproxy_sync_state_since_seconds",
                                    "Unix time the sync state (online/offline) last changed", value=st["since"])
            yield GaugeMetricFamily("spoolproxy_sync_unsent_entries",
                                    "journal entries the primary has not answered yet", value=st["unsent"])
            yield GaugeMetricFamily("spoolproxy_sync_journal_entries", "entries in this site's journal",
                                    value=st["journal"])
        primary = self.ctx.primary
        if primary is not None:
            g = GaugeMetricFamily("spoolproxy_sync_site_entries", "journal entries applied per site",
                                  labels=["site"])
            for s in primary.sites.all():
                g.add_metric([s["name"]], s.get("entries", 0))
            yield g
            yield GaugeMetricFamily("spoolproxy_sync_unapplied_entries", "site entries the primary could not apply",
                                    value=len(primary.unapplied()))


    def _printers(self) -> Iterator[Any]:
        upstream = self.ctx.upstream
        if upstream is None:
            return
        state = GaugeMetricFamily("spoolproxy_printer_state", "IPP printer-state: 3 idle, 4 processing, 5 stopped",
                                  labels=["queue"])
        up = GaugeMetricFamily("spoolproxy_printer_snmp_up", "1 while the printer's SNMP agent answers, else 0",
                               labels=["queue"])
        pages = GaugeMetricFamily("spoolproxy_printer_page_counter", "the printer's page counter (prtMarkerLifeCount)",
                                  labels=["queue"])
        supply = GaugeMetricFamily("spoolproxy_printer_supply_percent", "supply level in percent of its capacity",
                                   labels=["queue", "supply"])
        for name, q in self.ctx.settings.queues.items():
            if not q.printer:
                continue
            st = upstream.status(name)
            state.add_metric([name], int(st.state))
            if st.snmp is None:
                continue
            up.add_metric([name], 1 if st.snmp.state == "ok" else 0)
            if st.snmp.page_counter is not None:
                pages.add_metric([name], st.snmp.page_counter)
            for x in st.snmp.supplies:
                if x.percent is not None:
                    supply.add_metric([name, x.description or x.kind], x.percent)
        yield from (state, up, pages, supply)


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: WebContext = Depends(get_context)) -> Response:
    registry = getattr(ctx, "_registry", None)
    if registry is None:
        registry = CollectorRegistry()
        registry.register(_NodeCollector(ctx))  # type: ignore[arg-type]
        ctx._registry = registry  # type: ignore[attr-defined]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
