"""An AppSocket ("port 9100") printer that prints nothing: it reads every byte of every
connection, throws it away, and closes its side when the sender shuts down its write
side, which is what a raw printer does and what CUPS's socket backend and spoolproxy's
socket delivery wait for.

Run as its own process by bench/accept_rate.py so that the benchmark's client loop
does not also have to carry the delivery traffic:

    python bench/_sink.py [--host 127.0.0.1] [--port 0]

It prints ``PORT <n>`` on stdout once it listens, and on SIGTERM/SIGINT one JSON line
``{"connections": .., "jobs": .., "bytes": ..}`` (jobs = connections that carried at
least one byte) before it exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys


class Stats:
    connections = 0
    jobs = 0
    bytes = 0


class Discard(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.size = 0
        Stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.size += len(data)

    def eof_received(self) -> bool:
        self.transport.close()  # the job is "printed": let the sender see the close
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.size:
            Stats.jobs += 1
            Stats.bytes += self.size


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(Discard, host, port, backlog=1024, reuse_address=True)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()
    print(json.dumps({"connections": Stats.connections, "jobs": Stats.jobs, "bytes": Stats.bytes}),
          flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    try:
        asyncio.run(main(a.host, a.port))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
