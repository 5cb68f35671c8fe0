"""The ledger's JSON admin API (spoolproxy.web.admin_ledger), against a whole node.

Each test starts a real node (run_node: IPP on port 0, web on 127.0.0.1 port 0, state
in tmp_path), reads the admin token from STATE_DIR/admin-token and speaks HTTP to it
with httpx, in the test's trio loop.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import peers
import pytest
import trio

from spoolproxy import config
from spoolproxy.app import run_node
from spoolproxy.ledger import admin as ledger_admin
from spoolproxy.web import WebContext, create_app, serve_web
from spoolproxy.web import admin_ledger
from spoolproxy.web.auth import TOKEN_FILE

PROBLEM = "application/problem+json"
GRAY, COLOR = 10, 40


def node_settings(tmp_path: Path, **ledger) -> config.Settings:
    return config.from_mapping({
        "node": {"state_dir": str(tmp_path / "state"), "name": "ledgernode", "fsync": False},
        "ipp": {"listen": "127.0.0.1", "port": 0},
        "lpd": {"listen": "127.0.0.1", "port": 0},
        "web": {"listen": "127.0.0.1", "port": 0},
        "ledger": ledger,
        "queues": {
            "demo": {"printer": f"folder:{tmp_path / 'out'}", "default": True,
                     "cost": {"gray": GRAY, "color": COLOR}},
            "mono": {"printer": f"folder:{tmp_path / 'out-mono'}",
                     "cost": {"gray": GRAY, "color": COLOR},
                     "filters": {"force_grayscale": True, "force_duplex": True}},
        },
    })


async def start(nursery, s: config.Settings) -> httpx.AsyncClient:
    info = await nursery.start(run_node, s)
    token = (s.node.state_dir / TOKEN_FILE).read_text().strip()
    c = httpx.AsyncClient(base_url=f"http://127.0.0.1:{info.web_port}/api/v1/admin", trust_env=False,
                          timeout=60, headers={"Authorization": f"Bearer {token}"})
    c.settings, c.info, c.token = s, info, token
    return c


@pytest.fixture
async def api(tmp_path, nursery):
    async with await start(nursery, node_settings(tmp_path)) as c:
        yield c


def root(api: httpx.AsyncClient, path: str) -> str:
    """A URL outside the admin prefix (the client's base URL)."""
    return f"http://127.0.0.1:{api.info.web_port}{path}"


def problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body = r.json()
    assert body["status"] == status and body["type"] == f"https://spoolproxy.dev/problems/{slug}", body
    assert body["title"] and body.get("detail"), body
    return body


def invalid(r: httpx.Response, field: str) -> dict:
    """A 422 whose errors list names ``field`` (the last part of the dotted path)."""
    body = problem(r, 422, "validation-error")
    fields = [e["field"] for e in body["errors"]]
    assert any(f == field or f.startswith(field + ".") or f.endswith("." + field) for f in fields), body
    assert field in body["detail"], body
    return body


def cli(s: config.Settings, *args: str) -> subprocess.CompletedProcess:
    """``spoolproxy ARGS --state-dir STATE`` in its own process (it opens the node's LMDB)."""
    env = {k: v for k, v in os.environ.items() if k != "SPOOLPROXY_CONFIG"}
    return subprocess.run([sys.executable, "-m", "spoolproxy", *args, "--state-dir", str(s.node.state_dir)],
                          capture_output=True, text=True, timeout=60, env=env)


# -- the OpenAPI document and the token ---------------------------------------------------------

ENDPOINTS = [
    ("GET", "/users"), ("GET", "/users/alice"), ("PUT", "/users/alice"), ("POST", "/users/import"),
    ("GET", "/accounts"), ("GET", "/accounts/lab"), ("PUT", "/accounts/lab"),
    ("GET", "/balances/alice"), ("POST", "/balances/alice/topup"), ("POST", "/balances/alice/adjust"),
    ("GET", "/transactions"), ("POST", "/cost/preview"),
]


async def test_openapi_lists_the_ledger_paths(api):
    r = await api.get(root(api, "/api/openapi.json"))
    assert r.status_code == 200
    doc = r.json()
    paths = doc["paths"]
    for method, path in ENDPOINTS:
        templ = (path.replace("/alice", "/{account}" if "balances" in path else "/{name}")
                 .replace("/lab", "/{name}"))
        op = paths[f"/api/v1/admin{templ}"][method.lower()]
        assert op["security"] == [{"adminToken": []}], (method, templ)
        assert PROBLEM in op["responses"]["401"]["content"]
    ops = {op["operationId"] for p in paths.values() for op in p.values()}
    assert {"list_users", "get_user", "put_user", "import_users", "list_accounts", "get_account", "put_account",
            "get_balance", "topup_balance", "adjust_balance", "list_transactions", "preview_cost"} <= ops
    schemas = doc["components"]["schemas"]
    amount = schemas["BalanceChange"]["properties"]["amount"]
    assert amount["type"] == "string" and "pattern" in amount and "JSON numbers" in amount["description"]
    assert schemas["BalanceChange"]["required"] == ["amount", "comment"]
    assert schemas["UserOut"]["properties"]["balance"]["type"] == "integer"
    assert "balance_text" in schemas["UserOut"]["properties"]
    assert not {"pin", "password", "pin_hash", "password_hash"} & set(schemas["UserOut"]["properties"])
    assert schemas["UserChange"]["properties"]["pin"]["writeOnly"] is True
    assert "text/csv" in paths["/api/v1/admin/users/import"]["post"]["requestBody"]["content"]
    put = paths["/api/v1/admin/users/{name}"]["put"]
    assert {"200", "201", "404", "409", "422"} <= set(put["responses"])
    assert PROBLEM in put["responses"]["409"]["content"]


@pytest.mark.parametrize("method, path", ENDPOINTS)
async def test_every_endpoint_needs_the_admin_token(api, method, path):
    url = str(api.base_url).rstrip("/") + path
    async with httpx.AsyncClient(trust_env=False, timeout=10) as anon:
        r = await anon.request(method, url, content=b"{}")
        problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = await anon.request(method, url, content=b"{}", headers={"Authorization": "Bearer " + "x" * 40})
        problem(r, 403, "forbidden")


async def test_without_a_ledger_the_routes_say_so(tmp_path, nursery):
    s = node_settings(tmp_path)
    app = create_app(WebContext(s, "t" * 32))  # no ledger in the context
    bound = await nursery.start(serve_web, s, app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound.port}", trust_env=False) as c:
        r = await c.get("/api/v1/admin/users", headers={"Authorization": "Bearer " + "t" * 32})
    problem(r, 503, "ledger-unavailable")


# -- users -----------------------------------------------------------------------------------

ALICE = {"full_name": "Alice Liddell", "email": "alice@example.org", "groups": ["staff", "color"],
         "restricted": True, "overdraft": "2.50", "cards": ["04A1B2C3", "04FFEE01"], "identity": "S1001",
         "pin": "4321", "password": "correct horse", "disabled": False}


async def test_put_creates_a_user_and_get_shows_it_without_secrets(api):
    r = await api.put("/users/alice", json=ALICE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "alice" and body["account"] == "user:alice"
    assert body["groups"] == ["color", "staff"] and body["cards"] == ["04A1B2C3", "04FFEE01"]
    assert (body["overdraft"], body["overdraft_text"]) == (250, "2.50")
    assert (body["balance"], body["balance_text"]) == (0, "0.00")
    assert body["has_pin"] is True and body["has_password"] is True
    text = r.text
    assert "4321" not in text and "correct horse" not in text and "hash" not in text
    got = (await api.get("/users/alice")).json()
    assert got == body
    # a second PUT changes only what it names (null = unchanged) and is a 200
    r = await api.put("/users/alice", json={"email": "a@example.org", "full_name": None, "pin": ""})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["email"] == "a@example.org" and after["full_name"] == "Alice Liddell"
    assert after["has_pin"] is False and after["has_password"] is True
    assert after["cards"] == body["cards"] and after["overdraft"] == 250
    # an empty body on an existing user changes nothing
    r = await api.put("/users/alice", json={})
    assert r.status_code == 200 and r.json()["email"] == "a@example.org"


async def test_pin_and_password_are_stored_hashed(api):
    assert (await api.put("/users/bob", json={"pin": "123456", "password": "s3cret!"})).status_code == 201
    s = api.settings
    code = (
        "import sys\n"
        "from spoolproxy.db import Database\n"
        "from spoolproxy.ledger import Ledger, verify_secret\n"
        "db = Database(sys.argv[1], readonly=True)\n"
        "u = Ledger(db).user('bob')\n"
        "print(u.pin_hash != '123456', verify_secret('123456', u.pin_hash),\n"
        "      verify_secret('s3cret!', u.password_hash), verify_secret('wrong', u.password_hash))\n")
    out = subprocess.run([sys.executable, "-c", code, str(s.node.state_dir / "db")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "False"]


async def test_list_users_with_balances_and_a_prefix(api):
    for name in ("alice", "albert", "bob"):
        assert (await api.put(f"/users/{name}", json={"full_name": name.title()})).status_code == 201
    await api.post("/balances/albert/topup", json={"amount": "1.30", "comment": "cash"})
    rows = (await api.get("/users")).json()
    assert [r["name"] for r in rows] == ["albert", "alice", "bob"]
    albert = rows[0]
    assert (albert["balance"], albert["balance_text"], albert["full_name"]) == (130, "1.30", "Albert")
    assert set(albert) == {"name", "full_name", "groups", "restricted", "disabled", "balance", "balance_text"}
    assert [r["name"] for r in (await api.get("/users", params={"q": "AL"})).json()] == ["albert", "alice"]
    assert (await api.get("/users", params={"q": "zed"})).json() == []


async def test_user_errors(api):
    problem(await api.get("/users/nobody"), 404, "unknown-user")
    body = problem(await api.put("/users/nobody", params={"create": "false"}, json={"email": "x@y"}),
                   404, "unknown-user")
    assert body["user"] == "nobody"
    assert (await api.get("/users/nobody")).status_code == 404  # create=false made nothing
    assert (await api.put("/users/alice", json={"cards": ["C1"]})).status_code == 201
    body = problem(await api.put("/users/bob", json={"cards": ["C2", "C1"]}), 409, "conflict")
    assert "C1" in body["detail"] and "alice" in body["detail"]
    assert (await api.get("/users/bob")).status_code == 404  # refused whole
    invalid(await api.put("/users/bob", json={"cards": ["1", "2", "3"]}), "cards")
    body = invalid(await api.put("/users/bob", json={"pin": "12ab"}), "pin")
    assert "12ab" not in json.dumps(body)  # the rejected secret is not echoed
    invalid(await api.put("/users/bob", json={"pin": 1234}), "pin")
    body = invalid(await api.put("/users/bob", json={"overdraft": 1.5}), "overdraft")
    assert "decimal string" in body["detail"]
    invalid(await api.put("/users/bob", json={"overdraft": "1.555"}), "overdraft")
    invalid(await api.put("/users/bob", json={"overdraft": "-1"}), "overdraft")
    invalid(await api.put("/users/bob", json={"colour": True}), "colour")
    invalid(await api.put("/users/bob", json={"restricted": "yes"}), "restricted")
    body = problem(await api.put("/users/bob", json={"groups": ["ok", " padded "]}), 422, "ledger-refused")
    assert "group name" in body["detail"]
    r = await api.put("/users/bob", content=b"not json", headers={"content-type": "application/json"})
    problem(r, 422, "validation-error")
    assert (await api.get("/users/bob")).status_code == 404


# -- import ------------------------------------------------------------------------------------

CSV = (
    "username,full_name,groups,restricted,overdraft,card,pin,initial_credit\n"  # line 1
    "alice,Alice Liddell,staff;color,yes,1.00,A-1,1234,5.00\n"  # 2
    "bob,Bob,staff,no,,B-1,,\n"  # 3
    "carol,Carol,,maybe,,,,\n"  # 4: restricted is not yes/no
    "dave,Dave,,,1.234,,,\n"  # 5: three decimals
    "alice,Alice again,,,,,,\n"  # 6: alice twice
    "erin,Erin,,,,,12,\n"  # 7: a 2-digit PIN
    "frank,Frank,,,,,,,extra\n"  # 8: a field too many
    "\n"  # 9: blank, skipped
    "grace,Grace,,,,A-1,,\n"  # 10: alice's card
    "heidi,Heidi,lab,,,,,\n"  # 11
)


async def test_import_reports_bad_rows_by_line_and_imports_the_rest(api):
    r = await api.post("/users/import", content=CSV.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (3, 0, 0)
    lines = [e["line"] for e in report["errors"]]
    assert lines == [4, 5, 6, 7, 8, 10], report
    why = {e["line"]: e["error"] for e in report["errors"]}
    assert "restricted" in why[4] and "overdraft" in why[5] and "line 2" in why[6]
    assert "pin" in why[7] and "more field" in why[8] and "A-1" in why[10]
    assert [u["name"] for u in (await api.get("/users")).json()] == ["alice", "bob", "heidi"]
    alice = (await api.get("/users/alice")).json()
    assert (alice["balance"], alice["overdraft"], alice["cards"], alice["has_pin"]) == (500, 100, ["A-1"], True)
    assert (await api.get("/users/bob")).json()["restricted"] is False
    # the same file again: nothing changes, the same rows are reported
    again = (await api.post("/users/import", content=CSV.encode(), headers={"content-type": "text/csv"})).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert again["errors"] == report["errors"]
    assert (await api.get("/users/alice")).json()["balance"] == 500  # the initial credit once
    # one change in the file: one update
    changed = CSV.replace("Heidi,lab", "Heidi H,lab")
    third = (await api.post("/users/import", content=changed.encode(), headers={"content-type": "text/csv"})).json()
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 2)
    txns = (await api.get("/transactions", params={"account": "alice"})).json()
    assert [(t["kind"], t["amount"], t["by"]) for t in txns] == [("adjustment", 500, "admin-api")]


async def test_import_refuses_a_file_it_cannot_read(api):
    body = problem(await api.post("/users/import", content=b"name,email\nx,y\n",
                                  headers={"content-type": "text/csv"}), 422, "ledger-refused")
    assert "username" in body["detail"]
    body = problem(await api.post("/users/import", content=b"username\n\xff\xfe\n",
                                  headers={"content-type": "text/csv"}), 422, "ledger-refused")
    assert "UTF-8" in body["detail"]
    problem(await api.post("/users/import", json=[{"username": "x"}]), 415, "unsupported-media-type")
    assert (await api.get("/users")).json() == []


async def test_import_over_the_size_limit_is_a_413(api, monkeypatch):
    monkeypatch.setattr(admin_ledger, "MAX_IMPORT_BYTES", 100)
    big = ("username\n" + "".join(f"user{i}\n" for i in range(100))).encode()
    body = problem(await api.post("/users/import", content=big, headers={"content-type": "text/csv"}),
                   413, "content-too-large")
    assert body["limit"] == 100

    async def chunks():  # no Content-Length: the cap applies while streaming
        for i in range(0, len(big), 16):
            yield big[i:i + 16]

    problem(await api.post("/users/import", content=chunks(), headers={"content-type": "text/csv"}),
            413, "content-too-large")
    assert (await api.get("/users")).json() == []
    small = b"username\nzoe\n"
    assert (await api.post("/users/import", content=small, headers={"content-type": "text/csv"})).json()[
        "created"] == 1


# -- shared accounts -----------------------------------------------------------------------------

async def test_accounts(api):
    r = await api.put("/accounts/lab", json={"code": "4711", "users": ["bob", "alice", "bob"],
                                             "groups": ["staff"], "overdraft": "10", "info": "the lab"})
    assert r.status_code == 201, r.text
    lab = r.json()
    assert lab["account"] == "shared:lab" and lab["users"] == ["alice", "bob"]
    assert (lab["overdraft"], lab["overdraft_text"], lab["balance_text"]) == (1000, "10.00", "0.00")
    assert lab["restricted"] is True and lab["disabled"] is False
    assert (await api.get("/accounts/lab")).json() == lab
    r = await api.put("/accounts/lab", json={"restricted": False})
    assert r.status_code == 200 and r.json()["restricted"] is False and r.json()["code"] == "4711"
    assert (await api.put("/accounts/office", json={})).status_code == 201
    assert [a["name"] for a in (await api.get("/accounts")).json()] == ["lab", "office"]
    body = problem(await api.put("/accounts/office", json={"code": "4711"}), 409, "conflict")
    assert "4711" in body["detail"] and "lab" in body["detail"]
    problem(await api.get("/accounts/nope"), 404, "unknown-account")
    problem(await api.put("/accounts/nope", params={"create": "false"}, json={"info": "x"}), 404, "unknown-account")
    invalid(await api.put("/accounts/lab", json={"overdraft": 10}), "overdraft")
    # a user in the account's group may charge it
    await api.put("/users/carol", json={"groups": ["staff"]})
    assert (await api.get("/users/carol")).json()["shared_accounts"] == ["lab"]


# -- balances ----------------------------------------------------------------------------------

async def test_balance_of_a_user_or_shared_account(api):
    await api.put("/users/alice", json={"overdraft": "1.00"})
    await api.put("/accounts/lab", json={})
    await api.put("/accounts/alice", json={})  # a shared account with a user's name
    for ref, account in (("alice", "user:alice"), ("user:alice", "user:alice"), ("shared:alice", "shared:alice"),
                         ("lab", "shared:lab"), ("shared:lab", "shared:lab")):
        r = await api.get(f"/balances/{ref}")
        assert r.status_code == 200, r.text
        assert r.json()["account"] == account, ref
    bal = (await api.get("/balances/alice")).json()
    assert bal == {"account": "user:alice", "balance": 0, "balance_text": "0.00", "overdraft": 100,
                   "overdraft_text": "1.00", "available": 100, "available_text": "1.00", "restricted": True,
                   "disabled": False}
    for ref in ("nobody", "user:lab", "shared:nobody"):
        body = problem(await api.get(f"/balances/{ref}"), 404, "unknown-account")
        assert ref in body["detail"]


async def test_topup_and_adjust(api):
    await api.put("/users/alice", json={})
    r = await api.post("/balances/alice/topup", json={"amount": "1.50", "comment": "cash at the desk"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["new"] is True
    t = res["transaction"]
    assert (t["kind"], t["account"], t["amount"], t["amount_text"], t["balance"], t["balance_text"]) == (
        "top-up", "user:alice", 150, "1.50", 150, "1.50")
    assert t["by"] == "admin-api" and t["comment"] == "cash at the desk" and t["id"].startswith("topup/")
    assert res["balance"]["balance"] == 150 and res["balance"]["balance_text"] == "1.50"
    r = await api.post("/balances/user:alice/adjust", json={"amount": "-0.20", "comment": "misprint"})
    assert r.json()["transaction"]["kind"] == "adjustment" and r.json()["balance"]["balance"] == 130
    assert (await api.get("/users/alice")).json()["balance_text"] == "1.30"
    await api.put("/accounts/lab", json={})
    r = await api.post("/balances/shared:lab/topup", json={"amount": "20", "comment": "budget"})
    assert r.json()["balance"] == {**r.json()["balance"], "account": "shared:lab", "balance": 2000}


async def test_amounts_are_decimal_strings(api):
    await api.put("/users/alice", json={})
    url = "/balances/alice/topup"
    body = invalid(await api.post(url, json={"amount": 1.5, "comment": "x"}), "amount")
    assert "decimal string" in body["detail"]
    invalid(await api.post(url, json={"amount": 150, "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount_minor": 150, "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "1.505", "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "1,50", "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "-1.00", "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "0", "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "9" * 30, "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "1.00"}), "comment")
    invalid(await api.post(url, json={"amount": "1.00", "comment": ""}), "comment")
    invalid(await api.post("/balances/alice/adjust", json={"amount": "0.00", "comment": "x"}), "amount")
    invalid(await api.post(url, json={"amount": "1", "comment": "x", "txn_id": "has space"}), "txn_id")
    problem(await api.post("/balances/nobody/topup", json={"amount": "1", "comment": "x"}), 404, "unknown-account")
    assert (await api.get("/balances/alice")).json()["balance"] == 0
    assert (await api.get("/transactions")).json() == []


async def test_amounts_follow_the_node_decimals_and_currency(tmp_path, nursery):
    async with await start(nursery, node_settings(tmp_path, decimals=0, currency="JPY")) as api:
        await api.put("/users/taro", json={})
        r = await api.post("/balances/taro/topup", json={"amount": "500", "comment": "cash"})
        assert r.json()["transaction"]["amount"] == 500 and r.json()["balance"]["balance_text"] == "500 JPY"
        invalid(await api.post("/balances/taro/topup", json={"amount": "1.5", "comment": "x"}), "amount")


async def test_topup_with_a_txn_id_is_idempotent(api):
    await api.put("/users/alice", json={})
    req = {"amount": "5.00", "comment": "kiosk 3", "txn_id": "kiosk3-7f2c"}
    first = (await api.post("/balances/alice/topup", json=req)).json()
    assert first["new"] is True and first["transaction"]["id"] == "api/kiosk3-7f2c"
    again = await api.post("/balances/alice/topup", json=req)
    assert again.status_code == 200, again.text
    again = again.json()
    assert again["new"] is False and again["transaction"] == first["transaction"]
    assert again["balance"]["balance"] == 500  # not 1000
    body = problem(await api.post("/balances/alice/topup", json={**req, "amount": "6.00"}), 409,
                   "transaction-conflict")
    assert "kiosk3-7f2c" in body["detail"]
    problem(await api.post("/balances/alice/adjust", json=req), 409, "transaction-conflict")
    assert len((await api.get("/transactions")).json()) == 1
    # another id is another top-up
    other = (await api.post("/balances/alice/topup", json={**req, "txn_id": "kiosk3-7f2d"})).json()
    assert other["new"] is True and other["balance"]["balance"] == 1000


async def test_concurrent_retries_with_one_txn_id_top_up_once(api):
    await api.put("/users/alice", json={})
    req = {"amount": "2.00", "comment": "retry storm", "txn_id": "storm-1"}
    results = []

    async def post():
        results.append((await api.post("/balances/alice/topup", json=req)).json())

    async with trio.open_nursery() as n:
        for _ in range(8):
            n.start_soon(post)
    assert sum(r["new"] for r in results) == 1
    assert {r["transaction"]["seq"] for r in results} == {results[0]["transaction"]["seq"]}
    assert (await api.get("/balances/alice")).json()["balance"] == 200


# -- transactions ------------------------------------------------------------------------------

async def test_transactions_filters(api):
    await api.put("/users/alice", json={})
    await api.put("/users/bob", json={})
    await api.put("/accounts/lab", json={"users": ["alice"]})
    t0 = time.time()
    await api.post("/balances/alice/topup", json={"amount": "3.00", "comment": "a1"})
    await api.post("/balances/bob/topup", json={"amount": "1.00", "comment": "b1"})
    await api.post("/balances/alice/adjust", json={"amount": "-0.50", "comment": "a2"})
    await api.post("/balances/lab/topup", json={"amount": "10", "comment": "l1"})
    t1 = time.time()
    get = lambda **p: api.get("/transactions", params=p)  # noqa: E731

    def comments(r: httpx.Response) -> list[str]:
        assert r.status_code == 200, r.text
        return [t["comment"] for t in r.json()]

    assert comments(await get()) == ["l1", "a2", "b1", "a1"]  # newest first
    assert comments(await get(account="alice")) == ["a2", "a1"]
    assert comments(await get(account="user:bob")) == ["b1"]
    assert comments(await get(account="shared:lab")) == ["l1"]
    assert comments(await get(user="alice")) == ["a2", "a1"]
    assert comments(await get(user="admin-api")) == ["l1", "a2", "b1", "a1"]  # ... and what it did
    assert comments(await get(kind="top-up")) == ["l1", "b1", "a1"]
    assert comments(await get(kind="adjustment", account="alice")) == ["a2"]
    assert comments(await get(job=7)) == []
    assert comments(await get(limit=2)) == ["l1", "a2"]
    assert comments(await get(since=str(t1 + 5))) == []
    assert comments(await get(until=f"{t0 - 5:.3f}")) == []
    assert comments(await get(since=str(int(t0) - 1), until=str(int(t1) + 1))) == ["l1", "a2", "b1", "a1"]
    import datetime as dt
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()  # noqa: E731
    assert comments(await get(since=iso(t0 - 1), until=iso(t1 + 1))) == ["l1", "a2", "b1", "a1"]
    assert comments(await get(since=iso(t1 + 60))) == []
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert comments(await get(since=tomorrow)) == []
    assert len(comments(await get(until=tomorrow))) == 4
    rows = (await get(account="alice")).json()
    assert rows[0]["amount"] == -50 and rows[0]["amount_text"] == "-0.50" and rows[0]["balance_text"] == "2.50"
    assert rows[0]["account"] == "user:alice" and t0 - 1 <= rows[0]["time"] <= t1 + 1
    invalid(await get(since="last tuesday"), "since")
    invalid(await get(until="2026-13-40"), "until")
    invalid(await get(kind="gift"), "kind")
    invalid(await get(limit=0), "limit")
    invalid(await get(limit=10001), "limit")
    invalid(await get(job="x"), "job")
    problem(await get(account="nobody"), 404, "unknown-account")


async def test_changes_through_the_api_are_what_the_cli_reads(api):
    await api.put("/users/alice", json={"full_name": "Alice", "cards": ["C-9"]})
    await api.post("/balances/alice/topup", json={"amount": "4.20", "comment": "via api"})
    s = api.settings
    out = cli(s, "users", "show", "alice", "--json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert (view["full_name"], view["cards"], view["balance"]) == ("Alice", ["C-9"], 420)
    out = cli(s, "transactions", "--json")
    assert out.returncode == 0, out.stderr
    (t,) = json.loads(out.stdout)
    assert (t["by"], t["comment"], t["amount"]) == ("admin-api", "via api", 420)
    # and the other way: a CLI top-up shows through the API at once
    out = cli(s, "balance", "topup", "alice", "0.80", "-m", "via cli")
    assert out.returncode == 0, out.stderr
    assert (await api.get("/balances/alice")).json()["balance_text"] == "5.00"


# -- cost preview ------------------------------------------------------------------------------

TEXT = b"page one\fpage two\fpage three\n"  # plain text: three pages, gray
PCL = b"\x1bEfirst page\x0csecond page\x0c\x1bE"  # PCL 5: two pages
PS = b"""%!PS
/Helvetica findfont 24 scalefont setfont
72 700 moveto (gray page) show showpage
1 0 0 setrgbcolor 72 700 moveto (red page) show 0 0 0 setrgbcolor showpage
72 700 moveto (gray again) show showpage
"""


def leftovers(s: config.Settings) -> list[str]:
    return [p.name for p in s.node.state_dir.iterdir() if p.name.startswith(".cost-preview-")]


async def test_cost_preview_of_text_and_pcl(api):
    r = await api.post("/cost/preview", content=TEXT)
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["queue"], res["format"], res["pages"], res["copies"], res["gray"], res["sides"]) == (
        "demo", "text/plain", 3, 1, False, None)
    assert (res["cost"], res["cost_text"]) == (3 * GRAY, "0.30")
    assert res["breakdown"][-1] == "total 0.30" and "3 gray pages" in res["detail"]
    r = await api.post("/cost/preview", params={"copies": 4, "sides": "two-sided-long-edge"}, content=PCL,
                       headers={"content-type": "application/vnd.hp-pcl"})
    res = r.json()
    assert (res["format"], res["pages"], res["copies"], res["sides"], res["cost"]) == (
        "application/vnd.hp-pcl", 2, 4, "two-sided-long-edge", 8 * GRAY)
    # the queue's forced conversions are priced in
    res = (await api.post("/cost/preview", params={"queue": "mono"}, content=TEXT)).json()
    assert (res["queue"], res["gray"], res["sides"], res["cost"]) == ("mono", True, "two-sided-long-edge", 3 * GRAY)
    assert leftovers(api.settings) == []
    assert (await api.get("/transactions")).json() == []  # nothing charged


async def test_cost_preview_of_a_pdf_with_a_colour_page(api, tmp_path):
    gs = peers.require("gs")  # skip without it (a failure under SPOOLPROXY_REQUIRE_INTEROP=1)
    ps, pdf = tmp_path / "doc.ps", tmp_path / "doc.pdf"
    ps.write_bytes(PS)
    subprocess.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite", f"-sOutputFile={pdf}",
                    str(ps)], check=True, timeout=60)
    r = await api.post("/cost/preview", content=pdf.read_bytes(), headers={"content-type": "application/pdf"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["format"], res["pages"], res["cost"]) == ("application/pdf", 3, 2 * GRAY + COLOR)
    res = (await api.post("/cost/preview", params={"gray": "true", "copies": 2}, content=pdf.read_bytes())).json()
    assert (res["gray"], res["cost"]) == (True, 2 * 3 * GRAY)
    # the CLI gives the same answer (one shared function), with the same configuration
    conf = tmp_path / "node.toml"
    out_dir = tmp_path / "out"
    conf.write_text(f'[queues.demo]\nprinter = "folder:{out_dir}"\n'
                    f"[queues.demo.cost]\ngray = {GRAY}\ncolor = {COLOR}\n")
    out = cli(api.settings, "cost", str(pdf), "--json", "--config", str(conf))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cost"] == 2 * GRAY + COLOR


async def test_cost_preview_errors(api, monkeypatch):
    invalid(await api.post("/cost/preview", params={"queue": "nope"}, content=TEXT), "queue")
    invalid(await api.post("/cost/preview", params={"copies": 0}, content=TEXT), "copies")
    invalid(await api.post("/cost/preview", params={"sides": "both"}, content=TEXT), "sides")
    body = problem(await api.post("/cost/preview", content=b""), 422, "uncountable-document")
    assert "empty" in body["detail"] and ".cost-preview-" not in body["detail"]
    problem(await api.post("/cost/preview", content=b"\x00\x01\x02garbage" * 10), 422, "uncountable-document")
    monkeypatch.setattr(admin_ledger, "MAX_DOCUMENT_BYTES", 1000)
    problem(await api.post("/cost/preview", content=b"x" * 5000), 413, "content-too-large")

    async def chunks():
        for _ in range(50):
            yield b"y" * 100

    problem(await api.post("/cost/preview", content=chunks()), 413, "content-too-large")
    assert leftovers(api.settings) == []


async def test_cost_preview_runs_off_the_event_loop(api, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = ledger_admin.preview_cost

    def slow(*args, **kw):
        entered.set()
        release.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(ledger_admin, "preview_cost", slow)
    result = {}

    async def preview():
        result["r"] = await api.post("/cost/preview", content=TEXT)

    async with trio.open_nursery() as n:
        n.start_soon(preview)
        with trio.fail_after(10):
            while not entered.is_set():
                await trio.sleep(0.01)
            # the analysis is running (blocked): the node keeps answering
            r = await api.get("/users")
            assert r.status_code == 200
            r = await api.get(root(api, "/api/v1/health"))
            assert r.status_code == 200
        release.set()
    assert result["r"].status_code == 200 and result["r"].json()["pages"] == 3
