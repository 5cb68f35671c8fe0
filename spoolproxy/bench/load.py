"""The load: trio tasks that print, release and watch, the way a building full of
people does, against one node.

* IPP clients: Print-Job, or Create-Job + Send-Document, each on its own keep-alive
  connection, a document of the mix, a user of the population, a queue by weight.
* LPD clients: one job per connection (``spoolproxy.lpd.client``), named so that the
  books can find it again (LPD gives the client no job id).
* Releasers: a device logs a person in by card, lists their held jobs, releases them.
* A monitor: every ``interval`` the node's CPU and memory (/proc) and what the
  interval accepted, delivered and failed.

Everything a task learns goes into ``Tally``; ``run.py`` turns it into the report.
Nothing here decides pass or fail.
"""
from __future__ import annotations

import itertools
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx
import trio

from ..ipp.client import IppClient, IppClientError, IppStatusError, check, new_request, status_name
from ..ipp.model import Op, Tag
from ..lpd import client as lpd_client
from ..lpd import protocol as lpd_protocol
from .documents import Doc

IPP_QUEUES = {"direct": 5, "direct-ipp": 2, "secure": 2, "anywhere": 1}  # queue -> weight
HELD_AT = {"secure": ("secure",), "anywhere": ("p1", "p2")}  # held queue -> the printers that release it
HELD = tuple(HELD_AT)
GIVE_UP = 120.0  # seconds after which a held job its device never lists is left held (the books say so)


@dataclass
class Submitted:
    via: str  # "ipp" | "lpd"
    queue: str
    user: str
    doc: str
    size: int
    sent: float  # time.time() the request started
    accepted: float  # ... and was answered
    job_id: int | None = None  # IPP: the node's id; LPD: found by name afterwards
    name: str = ""
    released: float | None = None  # a held job: when its release was answered


@dataclass
class Tally:
    started: float = field(default_factory=time.time)
    jobs: list[Submitted] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    release_ms: list[float] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)  # the monitor's intervals
    held: dict[str, list[Submitted]] = field(default_factory=dict)  # user -> jobs waiting for release
    releasing: int = 0  # releasers in the middle of a login-list-release (their jobs are out of held)
    stop: trio.Event = field(default_factory=trio.Event)  # the printing stops (releasers go on)
    duration: float = 0.0  # seconds of printing
    offline: dict | None = None  # what the offline phase measured (run.offline_phase)
    interrupted: bool = False  # stopped by Ctrl-C before its --seconds or --jobs were done

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def accepted(self, job: Submitted) -> None:
        self.jobs.append(job)
        if job.queue in HELD:
            self.held.setdefault(job.user, []).append(job)


@dataclass
class Load:
    """What to send: the node's addresses, the documents, the people."""

    ipp_base: str  # ipp://127.0.0.1:PORT/ipp/print
    lpd_port: int
    web_base: str  # http://127.0.0.1:PORT
    docs: list[Doc]
    pick_doc: Callable[[random.Random], Doc]
    users: list[str]
    cards: dict[str, str]  # user -> card
    devices: dict[str, str]  # device key -> the queue it stands at
    max_jobs: int = 0  # 0: until stopped
    seed: int = 1

    def __post_init__(self) -> None:
        self.data = {d.name: d.path.read_bytes() for d in self.docs}  # read once, sent many times
        self._count = itertools.count(1)

    def next_number(self) -> int | None:
        n = next(self._count)
        return None if self.max_jobs and n > self.max_jobs else n


async def ipp_client(load: Load, tally: Tally, worker: int) -> None:
    rnd = random.Random(load.seed * 1000 + worker)
    queues, weights = zip(*IPP_QUEUES.items())
    clients: dict[str, IppClient] = {}
    try:
        while not tally.stop.is_set():
            n = load.next_number()
            if n is None:
                return
            queue = rnd.choices(queues, weights)[0]
            doc, user = load.pick_doc(rnd), rnd.choice(load.users)
            uri = f"{load.ipp_base}/{queue}"
            c = clients.get(queue) or clients.setdefault(queue, IppClient(uri, timeout=120))
            sent = time.time()
            try:
                job_id = await _print(c, uri, user, doc, load.data[doc.name], create=rnd.random() < 0.3)
            except IppStatusError as e:
                tally.error(f"ipp {status_name(e.status)}")
                continue
            except (IppClientError, OSError, trio.BrokenResourceError) as e:
                tally.error(f"ipp {type(e).__name__}")
                clients.pop(queue, None)
                await c.aclose()
                continue
            tally.accepted(Submitted("ipp", queue, user, doc.name, doc.size, sent, time.time(), job_id))
    finally:
        for c in clients.values():
            await c.aclose()


async def _print(c: IppClient, uri: str, user: str, doc: Doc, data: bytes, *, create: bool) -> int:
    if not create:
        req = new_request(Op.PRINT_JOB, uri, user=user)
        req.operation.add("job-name", Tag.NAME, doc.name)
        req.operation.add("document-format", Tag.MIME_TYPE, doc.format)
        resp = check(await c.request(req, data), uri=uri)
        return resp.group(Tag.JOB).value("job-id")
    req = new_request(Op.CREATE_JOB, uri, user=user)
    req.operation.add("job-name", Tag.NAME, doc.name)
    job_id = check(await c.request(req), uri=uri).group(Tag.JOB).value("job-id")
    req = new_request(Op.SEND_DOCUMENT, uri, user=user)
    req.operation.add("job-id", Tag.INTEGER, job_id)
    req.operation.add("document-format", Tag.MIME_TYPE, doc.format)
    req.operation.add("last-document", Tag.BOOLEAN, True)
    check(await c.request(req, data), uri=uri)
    return job_id


async def lpd_client_task(load: Load, tally: Tally, worker: int, queue: str = "direct-lpd") -> None:
    rnd = random.Random(load.seed * 2000 + worker)
    while not tally.stop.is_set():
        n = load.next_number()
        if n is None:
            return
        doc, user = load.pick_doc(rnd), rnd.choice(load.users)
        name = f"bench-lpd-{worker}-{n}"
        names = lpd_protocol.file_names(n % 1000, "benchclient", 1)
        control = lpd_protocol.build_control(host="benchclient", user=user, job_name=name,
                                             files=[("l", names[1], 1, doc.name)])
        data = load.data[doc.name]

        async def chunks(data: bytes = data):
            for i in range(0, len(data), 1 << 18):
                yield data[i:i + (1 << 18)]

        sent = time.time()
        try:
            await lpd_client.send_job("127.0.0.1", load.lpd_port, queue, control=control, control_name=names[0],
                                      data=[(names[1], len(data), chunks)], timeout=120)
        except lpd_client.LpdError as e:
            tally.error(f"lpd {type(e).__name__}")
            continue
        tally.accepted(Submitted("lpd", queue, user, doc.name, doc.size, sent, time.time(), name=name))


async def releaser(load: Load, tally: Tally, key: str, worker: int) -> None:
    """A device: whoever has jobs waiting logs in, sees them and releases them all."""
    rnd = random.Random(load.seed * 3000 + worker)
    async with httpx.AsyncClient(base_url=f"{load.web_base}/api/v1/device", timeout=120, trust_env=False,
                                 headers={"X-Device-Key": key}) as http:
        here = load.devices[key]  # the printer this device stands at
        while True:  # until cancelled: held jobs are released after the printing stopped too
            waiting = [u for u, jobs in tally.held.items() if any(here in HELD_AT[j.queue] for j in jobs)]
            if not waiting:
                await trio.sleep(0.05)
                continue
            user = rnd.choice(waiting)
            jobs = [j for j in tally.held[user] if here in HELD_AT[j.queue]]
            tally.held[user] = [j for j in tally.held[user] if here not in HELD_AT[j.queue]]
            tally.releasing += 1  # taken out of tally.held: the run waits for this, too
            try:
                r = await http.post("/login", json={"card": load.cards[user]})
                if r.status_code != 200:
                    tally.error(f"login {r.status_code}")
                    tally.held[user].extend(jobs)  # try again later
                    await trio.sleep(0.05)
                    continue
                auth = {"Authorization": f"Bearer {r.json()['token']}"}
                listed = await http.get("/jobs", headers=auth)
                ids = {j["id"] for j in listed.json().get("jobs", [])} if listed.status_code == 200 else set()
                mine = [j for j in jobs if j.job_id in ids]
                now = time.time()  # the others are not listed yet (still being counted): later
                tally.held[user].extend(j for j in jobs if j.job_id not in ids and now - j.accepted < GIVE_UP)
                if mine:
                    t0 = time.time()
                    r = await http.post("/release", json={"jobs": [j.job_id for j in mine]}, headers=auth)
                    t1 = time.time()
                    if r.status_code != 200:
                        tally.error(f"release {r.status_code}")
                    else:
                        tally.release_ms.append((t1 - t0) * 1000)
                        for j, res in zip(mine, r.json()["results"]):
                            if res.get("ok"):
                                j.released = t1
                            else:
                                tally.error(f"release refused: {res.get('reason')}")
                await http.post("/logout", headers=auth)
            except httpx.HTTPError as e:
                tally.error(f"device {type(e).__name__}")
                back = {id(j) for j in tally.held.setdefault(user, [])}  # some may be back already
                tally.held[user].extend(j for j in jobs if j.released is None and id(j) not in back)
                mine = []
            finally:
                tally.releasing -= 1
            await trio.sleep(0 if mine else 0.05)


def _stat(pid: int) -> tuple[int, float, int]:
    """(parent pid, CPU seconds, resident bytes) of one process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), rss


def proc_sample(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, resident bytes) of a process and its children (the node's
    document-engine workers do the counting), from /proc. OSError when it is gone."""
    _, cpu, rss = _stat(pid)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                parent, c, r = _stat(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                cpu, rss = cpu + c, rss + r
    return cpu, rss


async def monitor(tally: Tally, pid: int, delivered: Callable[[], int], interval: float,
                  on_sample: Callable[[dict], None] | None = None) -> None:
    """Every ``interval``: the node's CPU % and RSS, jobs accepted and delivered in it."""
    last_t, (last_cpu, _) = time.time(), proc_sample(pid)
    last_jobs, last_delivered, last_errors = 0, delivered(), 0
    while True:
        await trio.sleep(interval)
        now = time.time()
        try:
            cpu, rss = proc_sample(pid)
        except OSError:
            cpu, rss = last_cpu, None
        jobs = tally.jobs[last_jobs:]
        lat = sorted((j.accepted - j.sent) * 1000 for j in jobs)
        done = delivered()
        errors = sum(tally.errors.values())
        sample = {"t": round(now - tally.started, 3), "accepted": len(jobs), "delivered": done - last_delivered,
                  "errors": errors - last_errors,
                  "accept_p50_ms": lat[len(lat) // 2] if lat else None,
                  "accept_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
                  "cpu_percent": round((cpu - last_cpu) / (now - last_t) * 100, 1),
                  "rss_bytes": rss}
        tally.samples.append(sample)
        if on_sample is not None:
            on_sample(sample)
        last_t, last_cpu, last_jobs, last_delivered, last_errors = now, cpu, len(tally.jobs), done, errors
