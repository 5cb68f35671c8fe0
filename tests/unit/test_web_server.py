"""The web server: the [web] config section, the app (health, OpenAPI, admin token,
problem responses) served by hypercorn over real sockets, and the web part of a node.

The server runs in the test's trio loop on port 0 and is spoken to over HTTP with
httpx; a whole node (run_node) runs the same way with its state in tmp_path.
"""
from __future__ import annotations

import datetime
import logging
import os
import socket
import stat
from pathlib import Path

import httpx
import pytest
import trio
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from spoolproxy import __version__, config
from spoolproxy.app import ListenError, NodeStartError, run_node
from spoolproxy.config import ConfigError
from spoolproxy.web import (AdminTokenError, Problem, WebContext, create_app, get_context, require_admin,
                            serve_web)
from spoolproxy.web.auth import TOKEN_FILE, read_or_create_token

TOKEN = "test-admin-token-0123456789abcdef"
PROBLEM = "application/problem+json"


def web_settings(tmp_path: Path, **web) -> config.Settings:
    return config.from_mapping({
        "node": {"state_dir": str(tmp_path / "state"), "name": "testnode"},
        "ipp": {"listen": "127.0.0.1", "port": 0},
        "lpd": {"listen": "127.0.0.1", "port": 0},
        "web": {"listen": "127.0.0.1", "port": 0, **web},
        "queues": {"demo": {"printer": f"folder:{tmp_path / 'out'}", "default": True},
                   "held": {"printer": "ipp://127.0.0.1:9/ipp/print", "mode": "hold"}},
    })


def client(port: int, scheme: str = "http", **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{scheme}://127.0.0.1:{port}", trust_env=False, timeout=10, **kw)


def bearer(token: str | bytes) -> dict:
    return {"Authorization": (b"Bearer " + token) if isinstance(token, bytes) else f"Bearer {token}"}


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status
    assert body["type"] == f"https://spoolproxy.dev/problems/{slug}"
    assert isinstance(body["title"], str) and body["title"]
    return body


# -- the [web] section ---------------------------------------------------------------------


def test_web_defaults():
    w = config.load().web
    assert (w.enabled, w.listen, w.port, w.admin_token, w.certfile, w.keyfile) == (
        True, "0.0.0.0", 8632, None, None, None)


def test_web_section_from_a_file(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(f"""
[web]
enabled = false
listen = "::"
port = 443
admin_token = "{TOKEN}"
certfile = "/etc/spoolproxy/cert.pem"
keyfile = "/etc/spoolproxy/key.pem"
""")
    w = config.load(path).web
    assert (w.enabled, w.listen, w.port, w.admin_token) == (False, "::", 443, TOKEN)
    assert w.certfile == Path("/etc/spoolproxy/cert.pem") and w.keyfile == Path("/etc/spoolproxy/key.pem")


@pytest.mark.parametrize("web, key, why", [
    ({"port": 70000}, "web.port", "less than or equal to 65535"),
    ({"port": -1}, "web.port", "greater than or equal to 0"),
    ({"port": "http"}, "web.port", "integer"),
    ({"listen": "a b"}, "web.listen", "IP address or host name"),
    ({"listen": ""}, "web.listen", "IP address or host name"),
    ({"listen": "http://x/"}, "web.listen", "IP address or host name"),
    ({"certfile": "c.pem"}, "web.keyfile", "both certfile and keyfile"),
    ({"keyfile": "k.pem"}, "web.certfile", "both certfile and keyfile"),
    ({"admin_token": "short-secret"}, "web.admin_token", "at least 16 characters"),
    ({"admin_token": "a token with spaces in it"}, "web.admin_token", "letters, digits"),
    ({"admin_token": ""}, "web.admin_token", "at least 16 characters"),
    ({"tls": True}, "web.tls", "unknown key"),
    ({"enabled": "maybe"}, "web.enabled", "boolean"),
])
def test_web_section_errors_name_the_key(web, key, why):
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"web": web}, "site.toml")
    (line,) = str(e.value).splitlines()
    assert line.startswith(f"site.toml: {key}: "), line
    assert why in line, line


def test_a_bad_admin_token_is_not_echoed():
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"web": {"admin_token": "hunter2 secret"}})
    assert "hunter2" not in str(e.value)


def test_the_admin_token_stays_out_of_repr():
    s = config.from_mapping({"web": {"admin_token": TOKEN}})
    assert TOKEN not in repr(s) and TOKEN not in repr(s.web) and TOKEN not in str(s.web)
    assert TOKEN not in repr(WebContext(s, TOKEN))


# -- the app on hypercorn ----------------------------------------------------------------------

extra = APIRouter()


class InsufficientCredit(Problem):
    status, slug, title = 402, "insufficient-credit", "Insufficient credit"


class Payment(BaseModel):
    user: str
    amount: int


@extra.get("/items/{n}")
async def get_item(n: int, limit: int = 10) -> dict:
    return {"n": n, "limit": limit}


@extra.post("/payments")
async def post_payment(p: Payment) -> dict:
    if p.amount > 100:
        raise InsufficientCredit(detail=f"{p.user} has 1.00 left", balance=100, currency="EUR",
                                 headers={"Retry-After": "60"})
    return {"ok": True}


@extra.get("/boom")
async def boom() -> dict:
    raise RuntimeError("database password is hunter2")


@extra.get("/slow")
async def slow() -> dict:
    await trio.sleep(60)
    return {}


@extra.get("/sync-boom")
def sync_boom() -> dict:  # runs in a worker thread (anyio under trio)
    raise KeyError("internal key")


admin_extra = APIRouter()


@admin_extra.get("/whoami")
async def whoami(ctx: WebContext = Depends(get_context)) -> dict:
    return {"node": ctx.settings.node.name, "ledger": ctx.ledger}


guarded_elsewhere = APIRouter(prefix="/guarded", dependencies=[Depends(require_admin)])


@guarded_elsewhere.get("")
async def guarded() -> dict:
    return {"ok": True}


@pytest.fixture
async def web(tmp_path, nursery):
    s = web_settings(tmp_path)
    ctx = WebContext(s, TOKEN, ledger="the-ledger")
    app = create_app(ctx, routers=[extra, guarded_elsewhere], admin_routers=[admin_extra])
    bound = await nursery.start(serve_web, s, app)
    async with client(bound.port) as c:
        c.bound = bound
        yield c


async def test_serve_web_reports_the_real_port(web):
    b = web.bound
    assert (b.scheme, b.host) == ("http", "127.0.0.1")
    assert 0 < b.port < 65536
    assert b.local_url == f"http://127.0.0.1:{b.port}/"


async def test_health(web):
    r = await web.get("/api/v1/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "ok", "node": "testnode", "role": "standalone", "version": __version__}
    assert "server" not in r.headers  # no "hypercorn-h11" banner


async def test_openapi_document_and_docs(web):
    r = await web.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["info"]["title"] == "spoolproxy" and doc["info"]["version"] == __version__
    paths = doc["paths"]
    assert {"/api/v1/health", "/api/v1/admin/node", "/api/v1/admin/whoami"} <= set(paths)
    node = paths["/api/v1/admin/node"]["get"]
    assert node["security"] == [{"adminToken": []}]
    assert doc["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    assert node["operationId"] == "node_status"
    for code in ("401", "403", "default"):
        assert PROBLEM in node["responses"][code]["content"], code
    assert "security" not in paths["/api/v1/health"]["get"]
    # the 422 FastAPI documents is what we send: a problem naming the fields
    r422 = paths["/api/v1/items/{n}"]["get"]["responses"]["422"]["content"]
    assert list(r422) == [PROBLEM]
    assert r422[PROBLEM]["schema"]["$ref"] == "#/components/schemas/ValidationProblem"
    schemas = doc["components"]["schemas"]
    assert "errors" in schemas["ValidationProblem"]["properties"]
    assert "HTTPValidationError" not in schemas
    r = await web.get("/api/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/api/openapi.json" in r.text


async def test_unknown_path_is_a_404_problem(web):
    body = assert_problem(await web.get("/api/v1/nope"), 404, "not-found")
    assert body["title"] == "Not Found"
    assert "/api/v1/nope" in body["detail"]
    assert_problem(await web.get("/nope"), 404, "not-found")
    r = await web.get("/")  # the root leads people to the release page
    assert r.status_code == 307 and r.headers["location"] == "/release"


async def test_wrong_method_is_a_405_problem_with_allow(web):
    r = await web.delete("/api/v1/health")
    body = assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET"
    assert "DELETE" in body["detail"]


async def test_validation_errors_name_each_field(web):
    r = await web.get("/api/v1/items/seven", params={"limit": "hunter2"})
    body = assert_problem(r, 422, "validation-error")
    fields = {(e["in"], e["field"]) for e in body["errors"]}
    assert fields == {("path", "n"), ("query", "limit")}
    assert all(e["message"] and e["type"] == "int_parsing" for e in body["errors"])
    assert "path.n" in body["detail"] and "query.limit" in body["detail"]
    assert "hunter2" not in r.text  # the rejected input is not sent back

    body = assert_problem(await web.post("/api/v1/payments", json={"user": "bob"}), 422, "validation-error")
    assert [(e["in"], e["field"], e["type"]) for e in body["errors"]] == [("body", "amount", "missing")]

    r = await web.post("/api/v1/payments", content=b"{not json", headers={"content-type": "application/json"})
    body = assert_problem(r, 422, "validation-error")
    assert body["errors"][0]["type"] == "json_invalid"


async def test_a_route_raises_a_problem(web):
    r = await web.post("/api/v1/payments", json={"user": "bob", "amount": 250})
    body = assert_problem(r, 402, "insufficient-credit")
    assert body == {"type": "https://spoolproxy.dev/problems/insufficient-credit", "title": "Insufficient credit",
                    "status": 402, "detail": "bob has 1.00 left", "balance": 100, "currency": "EUR"}
    assert r.headers["retry-after"] == "60"
    r = await web.post("/api/v1/payments", json={"user": "bob", "amount": 5})
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_problem_defaults():
    p = Problem(409)
    assert p.body() == {"type": "https://spoolproxy.dev/problems/conflict", "title": "Conflict", "status": 409}
    p = Problem(404, "Unknown user", "no user 'bob'", slug="unknown-user", instance="/users/bob", user="bob")
    assert p.body() == {"type": "https://spoolproxy.dev/problems/unknown-user", "title": "Unknown user",
                        "status": 404, "detail": "no user 'bob'", "instance": "/users/bob", "user": "bob"}
    assert Problem(400, type="about:blank").body()["type"] == "about:blank"
    with pytest.raises(ValueError):
        Problem(200)


@pytest.mark.parametrize("path", ["/api/v1/boom", "/api/v1/sync-boom"])
async def test_an_unexpected_error_is_a_500_problem_and_the_server_keeps_serving(web, caplog, path):
    caplog.set_level(logging.ERROR, logger="spoolproxy")
    r = await web.get(path)
    body = assert_problem(r, 500, "internal-error")
    assert "hunter2" not in r.text and "internal key" not in r.text and "Error" not in body["detail"]
    incident = body["incident"]
    assert incident in body["detail"]
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1, [rec.getMessage() for rec in errors]  # logged once (not again by hypercorn)
    assert incident in errors[0].getMessage() and path in errors[0].getMessage()
    assert errors[0].name == "spoolproxy.web" and errors[0].exc_info is not None
    for _ in range(3):
        assert (await web.get("/api/v1/health")).status_code == 200
        assert (await web.get(path)).status_code == 500


async def test_admin_needs_the_token(web):
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {TOKEN}"}):
        r = await web.get("/api/v1/admin/node", headers=headers)
        assert_problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer"), headers
    for token in ("wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "tök€n".encode("utf-8")):
        r = await web.get("/api/v1/admin/node", headers=bearer(token))
        assert_problem(r, 403, "forbidden")
        assert "www-authenticate" not in r.headers
    r = await web.get("/api/v1/admin/node", headers=bearer(TOKEN))
    assert r.status_code == 200, r.text
    r = await web.get("/api/v1/admin/node", headers={"authorization": f"bearer {TOKEN}"})  # scheme is case-blind
    assert r.status_code == 200, r.text


async def test_admin_routers_plug_in_behind_the_token(web):
    assert_problem(await web.get("/api/v1/admin/whoami"), 401, "unauthorized")
    r = await web.get("/api/v1/admin/whoami", headers=bearer(TOKEN))
    assert r.json() == {"node": "testnode", "ledger": "the-ledger"}
    # a router elsewhere that guards itself with require_admin
    assert_problem(await web.get("/api/v1/guarded"), 401, "unauthorized")
    assert_problem(await web.get("/api/v1/guarded", headers=bearer("nope")), 403, "forbidden")
    assert (await web.get("/api/v1/guarded", headers=bearer(TOKEN))).json() == {"ok": True}


async def test_hypercorn_logs_into_ours(web, caplog):
    caplog.set_level(logging.DEBUG, logger="spoolproxy")
    await web.get("/api/v1/health")
    access: list = []
    with trio.fail_after(5):  # hypercorn writes the line after the response went out
        while not access:
            await trio.sleep(0.01)
            access = [r for r in caplog.records if r.name == "spoolproxy.web.access"]
    assert access and access[-1].levelno == logging.DEBUG
    assert "GET /api/v1/health 200" in access[-1].getMessage()
    # hypercorn added no handler of its own (which would print its lines a second time)
    assert logging.getLogger("hypercorn.error").handlers == []
    assert logging.getLogger("hypercorn.access").handlers == []


async def test_cancelling_stops_the_server_at_once(tmp_path):
    s = web_settings(tmp_path)
    app = create_app(WebContext(s, TOKEN), routers=[extra])
    outcome: list = []
    with trio.fail_after(10):
        async with client(0) as c:  # an in-flight request and an idle keep-alive connection
            async with trio.open_nursery() as requests:
                async with trio.open_nursery() as node:
                    bound = await node.start(serve_web, s, app)
                    url = f"http://127.0.0.1:{bound.port}"
                    assert (await c.get(url + "/api/v1/health")).status_code == 200

                    async def slow_request():
                        try:
                            outcome.append(await c.get(url + "/api/v1/slow"))
                        except httpx.HTTPError as e:
                            outcome.append(e)
                    requests.start_soon(slow_request)
                    await trio.sleep(0.2)
                    t0 = trio.current_time()
                    node.cancel_scope.cancel()
                assert trio.current_time() - t0 < 1.0
        assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError)  # cut off, not answered
    with pytest.raises(OSError):  # the port is closed
        await trio.open_tcp_stream("127.0.0.1", bound.port)


async def test_a_shutdown_trigger_stops_it_gracefully(tmp_path, nursery):
    s = web_settings(tmp_path)
    stop = trio.Event()
    done = trio.Event()

    async def run(task_status):
        await serve_web(s, create_app(WebContext(s, TOKEN)), shutdown_trigger=stop.wait, task_status=task_status)
        done.set()

    bound = await nursery.start(run)
    async with client(bound.port) as c:
        assert (await c.get("/api/v1/health")).status_code == 200
    stop.set()
    with trio.fail_after(5):
        await done.wait()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", bound.port)


async def test_a_busy_port_is_an_oserror_before_start_returns(tmp_path, nursery):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        s = web_settings(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(OSError):
            await nursery.start(serve_web, s, create_app(WebContext(s, TOKEN)))


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also as an IP subject alternative name, so
    that a client checking it against this file as its CA accepts it)."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


async def test_tls(tmp_path, nursery):
    certfile, keyfile = make_cert(tmp_path)
    s = web_settings(tmp_path, certfile=str(certfile), keyfile=str(keyfile))
    bound = await nursery.start(serve_web, s, create_app(WebContext(s, TOKEN)))
    assert bound.scheme == "https" and bound.local_url.startswith("https://")
    async with client(bound.port, "https", verify=False) as c:
        r = await c.get("/api/v1/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"
    async with client(bound.port) as c:  # plain http on the TLS port gets no answer
        with pytest.raises(httpx.HTTPError):
            await c.get("/api/v1/health")


async def test_tls_with_a_missing_certificate_fails_before_listening(tmp_path, nursery):
    s = web_settings(tmp_path, certfile=str(tmp_path / "nope.pem"), keyfile=str(tmp_path / "nope.key"))
    with pytest.raises(OSError, match="nope.pem"):
        await nursery.start(serve_web, s, create_app(WebContext(s, TOKEN)))


# -- the admin token file ----------------------------------------------------------------------


def test_token_file_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / TOKEN_FILE
    token = read_or_create_token(path)
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token
    assert read_or_create_token(path) == token
    assert not [p for p in tmp_path.iterdir() if p.name != TOKEN_FILE]  # no temporary file left


def test_token_file_open_to_others_is_tightened(tmp_path, caplog):
    path = tmp_path / TOKEN_FILE
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    assert read_or_create_token(path) == TOKEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by other users" in caplog.text and TOKEN not in caplog.text


def test_unusable_token_file(tmp_path):
    path = tmp_path / TOKEN_FILE
    path.write_text("two words\n")
    path.chmod(0o600)
    with pytest.raises(AdminTokenError, match="remove the file"):
        read_or_create_token(path)
    path.write_text("\n")
    token = read_or_create_token(path)  # empty: a new one
    assert token and path.read_text().strip() == token


# -- the web part of a node ----------------------------------------------------------------


async def start_node(nursery, s: config.Settings):
    return await nursery.start(run_node, s)


async def test_node_serves_web_with_a_token_file(tmp_path, nursery, caplog):
    caplog.set_level(logging.INFO, logger="spoolproxy")
    s = web_settings(tmp_path)
    info = await start_node(nursery, s)
    assert info.web_port and info.web_port != info.ipp_port
    path = s.node.state_dir / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert token not in caplog.text  # only where it is
    assert str(path.resolve()) in caplog.text
    web_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("web ")]
    assert web_lines == [f"web  http://127.0.0.1:{info.web_port}/"]
    async with client(info.web_port) as c:
        r = await c.get("/api/v1/health")
        assert r.json() == {"status": "ok", "node": "testnode", "role": "standalone", "version": __version__}
        assert_problem(await c.get("/api/v1/admin/node"), 401, "unauthorized")
        assert_problem(await c.get("/api/v1/admin/node", headers=bearer("x" * 43)), 403, "forbidden")
        r = await c.get("/api/v1/admin/node", headers=bearer(token))
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["name"] == "testnode" and body["role"] == "standalone" and body["version"] == __version__
    assert body["state_dir"] == str(s.node.state_dir.resolve())
    assert 0 <= body["uptime"] < 60
    assert body["queues"] == {
        "demo": {"printer": f"folder:{tmp_path / 'out'}", "mode": "direct", "default": True,
                 "printers": [], "uri": info.queues["demo"]},
        "held": {"printer": "ipp://127.0.0.1:9/ipp/print", "mode": "hold", "default": False,
                 "printers": [], "uri": info.queues["held"]},
    }
    assert info.queues["demo"] == f"ipp://127.0.0.1:{info.ipp_port}/ipp/print/demo"


async def test_node_keeps_its_token_across_restarts(tmp_path):
    s = web_settings(tmp_path)
    tokens = []
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            info = await start_node(nursery, s)
            token = (s.node.state_dir / TOKEN_FILE).read_text().strip()
            tokens.append(token)
            async with client(info.web_port) as c:
                assert (await c.get("/api/v1/admin/node", headers=bearer(token))).status_code == 200
            nursery.cancel_scope.cancel()
    assert tokens[0] == tokens[1]
    assert stat.S_IMODE((s.node.state_dir / TOKEN_FILE).stat().st_mode) == 0o600


async def test_node_with_a_configured_token_writes_no_file(tmp_path, nursery, caplog):
    caplog.set_level(logging.INFO, logger="spoolproxy")
    s = web_settings(tmp_path, admin_token=TOKEN)
    info = await start_node(nursery, s)
    assert not (s.node.state_dir / TOKEN_FILE).exists()
    assert TOKEN not in caplog.text and "web.admin_token" in caplog.text
    async with client(info.web_port) as c:
        assert (await c.get("/api/v1/admin/node", headers=bearer(TOKEN))).status_code == 200


async def test_node_with_web_disabled(tmp_path, nursery):
    s = web_settings(tmp_path, enabled=False)
    info = await start_node(nursery, s)
    assert info.web_port is None
    assert not (s.node.state_dir / TOKEN_FILE).exists()
    assert info.ipp_port  # the rest of the node runs


async def test_node_stops_its_web_server_when_cancelled(tmp_path):
    s = web_settings(tmp_path)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            info = await start_node(nursery, s)
            async with client(info.web_port) as c:
                assert (await c.get("/api/v1/health")).status_code == 200
            nursery.cancel_scope.cancel()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", info.web_port)


async def start_error(s: config.Settings) -> BaseException:
    """The error that keeps a node from starting (fails instead of hanging if it starts)."""
    from spoolproxy.app import _single
    with trio.fail_after(20):
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_node, s)
                nursery.cancel_scope.cancel()
        except Exception as e:  # not Cancelled: a hang ends in TooSlowError
            return _single(e) if isinstance(e, BaseExceptionGroup) else e
    pytest.fail("the node started")


async def test_node_on_a_busy_web_port_is_a_listen_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        e = await start_error(web_settings(tmp_path, port=port))
    assert isinstance(e, ListenError), repr(e)
    assert f"web on 127.0.0.1:{port}" in str(e)


async def test_node_with_an_unusable_token_file_does_not_start(tmp_path):
    s = web_settings(tmp_path)
    s.node.state_dir.mkdir(parents=True)
    (s.node.state_dir / TOKEN_FILE).write_text("not a token\n")
    os.chmod(s.node.state_dir / TOKEN_FILE, 0o600)
    e = await start_error(s)
    assert isinstance(e, NodeStartError) and "admin" in str(e), repr(e)


async def test_an_answer_before_the_whole_upload_closes_the_connection(web):
    """A 401 to a chunked upload that is still coming says Connection: close and
    closes, so the unread rest of the body cannot hang a next request on it."""
    port = web.bound.port
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"POST /api/v1/admin/node HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          b"Content-Type: text/csv\r\n\r\n5\r\nusern\r\n")
    data = b""
    with trio.fail_after(10):
        while True:
            chunk = await stream.receive_some()
            if not chunk:
                break  # the server closed it
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith((b"http/1.1 401", b"http/1.1 405")) and b"connection: close" in head, head
    assert (await web.get("/api/v1/health")).status_code == 200  # and the server keeps serving
