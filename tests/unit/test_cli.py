"""The `spoolproxy` command: in-process through main() and as `python -m spoolproxy`."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import spoolproxy
from spoolproxy import cli, config, logs

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m spoolproxy ARGS` in a child process."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop(config.ENV_CONFIG, None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "spoolproxy", *args], capture_output=True, text=True,
                          env=e, cwd=cwd or ROOT, timeout=120)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(config.ENV_CONFIG, raising=False)


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """
[node]
state_dir = "{state}"
[ipp]
port = 9631
hostname = "print.example.com"
[queues.mono]
printer = "ipp://10.0.0.7/ipp/print"
mode = "hold"
[queues.files]
printer = "folder:out"
default = true
"""


# -- version ------------------------------------------------------------------------------


def test_version_in_process(capsys):
    assert cli.main(["version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"spoolproxy {cli.version_string()}"
    assert out[0].split()[1].count(".") == 2


def test_version_falls_back_to_the_package_version(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)
    monkeypatch.setattr(md, "version", missing)
    assert cli.version_string() == spoolproxy.__version__ == "0.1.0"


def test_version_names_the_engine_when_there_is_one(capsys, monkeypatch):
    monkeypatch.setattr(cli, "engine_implementation", lambda: "python")
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["document engine: python"]
    monkeypatch.setattr(cli, "engine_implementation", lambda: None)
    assert cli.main(["version"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_engine_implementation_survives_a_broken_engine(monkeypatch):
    broken = types.ModuleType("spoolproxy.pdl")

    def getattr_(name):
        raise RuntimeError("engine exploded")
    broken.__getattr__ = getattr_  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spoolproxy.pdl", broken)
    assert cli.engine_implementation() == "unavailable (RuntimeError: engine exploded)"
    monkeypatch.setitem(sys.modules, "spoolproxy.pdl", None)  # import fails
    assert cli.engine_implementation() is None
    fine = types.ModuleType("spoolproxy.pdl")
    monkeypatch.setitem(sys.modules, "spoolproxy.pdl", fine)
    assert cli.engine_implementation() is None
    fine.IMPLEMENTATION = "cython"  # type: ignore[attr-defined]
    assert cli.engine_implementation() == "cython"


def test_version_subprocess():
    r = run("version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"spoolproxy {spoolproxy.__version__}"
    assert r.stderr == ""


# -- usage ----------------------------------------------------------------------------------


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("serve", "check-config", "version", "jobs"):
        assert command in out


def test_jobs_without_action_exits_2(capsys):
    assert cli.main(["jobs"]) == 2
    err = capsys.readouterr().err
    assert "list" in err and "cancel" in err


@pytest.mark.parametrize("argv", [["jobs", "show", "abc"], ["jobs", "cancel", "0"],
                                  ["serve", "--port", "70000"], ["serve", "--log-level", "loud"],
                                  ["jobs", "list", "--which", "some"]])
def test_bad_arguments_exit_2(capsys, argv):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err


# -- check-config ---------------------------------------------------------------------------


def test_check_config_defaults(capsys):
    assert cli.main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "embedded defaults: OK" in out
    assert "standalone" in out
    assert "demo (default)" in out
    assert ":8631/ipp/print/demo" in out


def test_check_config_file(tmp_path, capsys):
    path = write(tmp_path, GOOD.format(state=tmp_path / "st"))
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert str(tmp_path / "st") in out
    assert "ipp://print.example.com:9631/ipp/print/mono" in out
    assert "ipp://print.example.com:9631/ipp/print/files" in out
    mono = next(line for line in out.splitlines() if line.strip().startswith("mono"))
    assert "hold" in mono and "ipp://10.0.0.7/ipp/print" in mono
    files = next(line for line in out.splitlines() if line.strip().startswith("files"))
    assert "(default)" in files and "direct" in files and str(tmp_path / "st" / "out") in files


def test_check_config_uses_the_environment(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, GOOD.format(state=tmp_path / "st"))
    monkeypatch.setenv(config.ENV_CONFIG, str(path))
    assert cli.main(["check-config"]) == 0
    assert f"{path}: OK" in capsys.readouterr().out


def test_check_config_bad_file_every_line_names_a_key(tmp_path, capsys):
    path = write(tmp_path, 'bogus = 1\n[ipp]\nport = 70000\n[queues.q]\nprinter = "lpr://x"\n')
    assert cli.main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 3
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {"bogus", "ipp.port", "queues.q.printer"}
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_check_config_missing_file(tmp_path, capsys):
    assert cli.main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_check_config_toml_error(tmp_path, capsys):
    path = write(tmp_path, "[ipp\n")
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not valid TOML" in err


def test_check_config_subprocess(tmp_path):
    good = write(tmp_path, GOOD.format(state=tmp_path / "st"))
    r = run("check-config", str(good))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    bad = write(tmp_path, "[queues.q]\nprinter = \"folder:x\"\ncolour = true\n", name="bad.toml")
    r = run("check-config", str(bad))
    assert r.returncode == 2
    assert "queues.q.colour: unknown key" in r.stderr
    assert "Traceback" not in r.stderr


def test_check_config_env_subprocess(tmp_path):
    bad = write(tmp_path, "[ipp]\nport = -1\n")
    r = run("check-config", env={config.ENV_CONFIG: str(bad)})
    assert r.returncode == 2
    assert "ipp.port" in r.stderr


# -- serve (with a stand-in for spoolproxy.app) ----------------------------------------------


@pytest.fixture
def fake_app(monkeypatch, restore_logging):
    calls: list = []
    mod = types.ModuleType("spoolproxy.app")
    mod.behaviour = lambda settings: None  # type: ignore[attr-defined]

    def serve(settings):
        calls.append(settings)
        return mod.behaviour(settings)  # type: ignore[attr-defined]
    mod.serve = serve  # type: ignore[attr-defined]
    mod.NodeStartError = type("NodeStartError", (RuntimeError,), {})  # type: ignore[attr-defined]
    mod.StateDirBusy = type("StateDirBusy", (mod.NodeStartError,), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spoolproxy.app", mod)
    monkeypatch.setattr(spoolproxy, "app", mod, raising=False)
    mod.calls = calls  # type: ignore[attr-defined]
    return mod


def test_serve_passes_options_over_the_config(tmp_path, fake_app):
    path = write(tmp_path, GOOD.format(state=tmp_path / "st"))
    assert cli.main(["serve", "--config", str(path), "--state-dir", str(tmp_path / "other"),
                     "--listen", "127.0.0.1", "--port", "0", "--log-level", "WARNING"]) == 0
    (s,) = fake_app.calls
    assert s.node.state_dir == tmp_path / "other"
    assert s.ipp.listen == "127.0.0.1"
    assert s.ipp.port == 0
    assert s.node.log_level == "warning"
    assert s.ipp.hostname == "print.example.com"  # from the file
    assert logging.getLogger().level == logging.WARNING


def test_serve_without_options_uses_the_file(tmp_path, fake_app):
    path = write(tmp_path, GOOD.format(state=tmp_path / "st"))
    assert cli.main(["serve", "-c", str(path)]) == 0
    (s,) = fake_app.calls
    assert s.ipp.port == 9631 and s.node.state_dir == tmp_path / "st"


def test_serve_config_error_exits_2(tmp_path, fake_app, capsys):
    path = write(tmp_path, "[ipp]\nport = 70000\n")
    assert cli.main(["serve", "--config", str(path)]) == 2
    assert "ipp.port" in capsys.readouterr().err
    assert fake_app.calls == []


def test_serve_bad_override_is_a_config_error(tmp_path, fake_app, capsys):
    assert cli.main(["serve", "--listen", "", "--state-dir", str(tmp_path)]) == 2
    assert "ipp.listen" in capsys.readouterr().err


def test_serve_ctrl_c_exits_0(fake_app, tmp_path, capsys):
    def interrupted(settings):
        raise KeyboardInterrupt
    fake_app.behaviour = interrupted
    assert cli.main(["serve", "--state-dir", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_serve_ctrl_c_inside_an_exception_group_exits_0(fake_app, tmp_path):
    def interrupted(settings):
        raise BaseExceptionGroup("nursery", [KeyboardInterrupt(), BaseExceptionGroup("x", [KeyboardInterrupt()])])
    fake_app.behaviour = interrupted
    assert cli.main(["serve", "--state-dir", str(tmp_path)]) == 0


def test_serve_on_a_busy_state_dir_exits_1_with_a_message(fake_app, tmp_path, capsys):
    def busy(settings):
        raise fake_app.StateDirBusy(f"another spoolproxy node is running on {tmp_path}")
    fake_app.behaviour = busy
    assert cli.main(["serve", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "another spoolproxy node is running" in err and "Traceback" not in err


def test_serve_crash_is_loud_and_exits_1(fake_app, tmp_path, capsys):
    def crash(settings):
        raise RuntimeError("the printer caught fire")
    fake_app.behaviour = crash
    assert cli.main(["serve", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the printer caught fire" in err
    assert "CRIT" in err and "Traceback" in err


def test_serve_config_error_from_the_app_exits_2(fake_app, tmp_path, capsys):
    def bad(settings):
        raise config.ConfigError("site.toml: queues.q.printer: no such printer")
    fake_app.behaviour = bad
    assert cli.main(["serve", "--state-dir", str(tmp_path)]) == 2
    assert "queues.q.printer" in capsys.readouterr().err


def test_serve_sigterm_is_handled_while_the_app_runs(fake_app, tmp_path):
    import signal
    seen = []

    def check(settings):
        seen.append(signal.getsignal(signal.SIGTERM))
    fake_app.behaviour = check
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["serve", "--state-dir", str(tmp_path)]) == 0
    assert seen[0] not in (signal.SIG_DFL, None)
    assert signal.getsignal(signal.SIGTERM) == before


# -- logs -----------------------------------------------------------------------------------


def test_log_format(restore_logging):
    buf = io.StringIO()
    logs.setup("info", stream=buf)
    logging.getLogger("spoolproxy.ipp.server").info("listening on %s", "ipp://h:8631/ipp/print/demo")
    logging.getLogger("spoolproxy.upstream").warning("printer down")
    logging.getLogger("spoolproxy.spool").debug("not shown")
    logging.getLogger("hypercorn.error").error("boom")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    import re
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    assert re.fullmatch(stamp + r"INFO  ipp: listening on ipp://h:8631/ipp/print/demo", lines[0]), lines[0]
    assert re.fullmatch(stamp + r"WARN  upstream: printer down", lines[1]), lines[1]
    assert re.fullmatch(stamp + r"ERROR hypercorn\.error: boom", lines[2]), lines[2]


def test_log_debug_shows_full_module_names(restore_logging):
    buf = io.StringIO()
    logs.setup("debug", stream=buf)
    logging.getLogger("spoolproxy.ipp.server").debug("x")
    assert buf.getvalue().rstrip().endswith("DEBUG ipp.server: x")


def test_log_setup_twice_replaces_the_handler(restore_logging):
    first, second = io.StringIO(), io.StringIO()
    logs.setup("info", stream=first)
    logs.setup("warning", stream=second)
    log = logging.getLogger("spoolproxy.lpd")
    log.info("quiet")
    log.error("loud")
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("ERROR lpd: loud")


def test_noisy_loggers_are_quiet(restore_logging):
    buf = io.StringIO()
    logs.setup("info", stream=buf)
    logging.getLogger("hpack.hpack").info("decoded header")
    logging.getLogger("hypercorn.access").info("GET / 200")
    logging.getLogger("hypercorn.access").warning("slow client")
    assert "decoded header" not in buf.getvalue()
    assert "GET / 200" not in buf.getvalue()
    assert "slow client" in buf.getvalue()


def test_log_level_names():
    assert logs.level_number("INFO") == logging.INFO
    assert logs.level_number("warn") == logging.WARNING
    with pytest.raises(ValueError, match="loud"):
        logs.level_number("loud")


def test_log_lines_without_time_under_systemd(restore_logging, tmp_path, monkeypatch):
    with open(tmp_path / "journal", "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logs.setup("info", stream=f)
        logging.getLogger("spoolproxy.app").info("started")
    assert (tmp_path / "journal").read_text() == "INFO  app: started\n"


# -- jobs: a node's state directory, filled through the JobStore API -------------------------

import datetime as _dt  # noqa: E402
import http.server  # noqa: E402
import threading  # noqa: E402

import trio  # noqa: E402

from spoolproxy.db import Database  # noqa: E402
from spoolproxy.ipp import codec  # noqa: E402
from spoolproxy.ipp.model import JobState, Op, Status, Tag  # noqa: E402
from spoolproxy.ipp.types import Attribute, Collection, Message, Range, Resolution, TextLang  # noqa: E402
from spoolproxy.spool import JobStore  # noqa: E402

PDF = b"%PDF-1.4\n" + b"x" * 2000 + b"\n%%EOF\n"


def job_attributes() -> bytes:
    return codec.encode_attributes([
        Attribute.of("copies", Tag.INTEGER, 2),
        Attribute.of("sides", Tag.KEYWORD, "two-sided-long-edge"),
        Attribute.of("page-ranges", Tag.RANGE, Range(1, 3)),
        Attribute.of("printer-resolution", Tag.RESOLUTION, Resolution(600, 600)),
        Attribute.of("job-name", Tag.NAME_LANG, TextLang("Bericht", "de")),
        Attribute.of("job-hold-until", Tag.NO_VALUE),
        Attribute.of("media-col", Tag.BEGIN_COLLECTION,
                     Collection([Attribute.of("media-size-name", Tag.KEYWORD, "iso_a4_210x297mm")])),
    ])


async def _fill(store: JobStore) -> dict[str, int]:
    async def chunks():
        yield PDF

    ids = {}
    a = store.new_job(queue="demo", user="alice", name="report.pdf", host="ws1",
                      attributes=job_attributes(), created=1_700_000_000.0)
    name, size = await store.spool_document(chunks())
    store.add_document(a, name, size, "application/pdf", doc_name="report.pdf")
    a.closed = True
    await store.save(a)
    ids["alice"] = a.id

    b = store.new_job(queue="mono", user="bob", name="memo", state=JobState.PENDING_HELD,
                      state_reasons=["job-hold-until-specified"])
    name, size = await store.spool_document(chunks())
    store.add_document(b, name, size, "application/pdf")
    b.closed = True
    b.delivery.phase = "sent"
    b.delivery.upstream_job_id = 41
    b.delivery.upstream_job_uri = "ipp://10.0.0.7/ipp/print/41"
    await store.save(b)
    ids["bob"] = b.id

    c = store.new_job(queue="demo", user="alice", name="old", state=JobState.COMPLETED,
                      state_reasons=["job-completed-successfully"], completed=1_700_000_100.0,
                      impressions_completed=3)
    c.created = 1_700_000_000.0
    c.extra["stages"] = {"analysed": 1_700_000_000.25, "admit_ms": 0.0125, "charge_ms": 2.5}
    await store.save(c)
    ids["done"] = c.id
    return ids


@pytest.fixture
def node(tmp_path):
    """A stopped node: config file, state dir with three jobs. Returns (config, ids)."""
    state = tmp_path / "st"
    cfg = write(tmp_path, f"""
[node]
state_dir = "{state}"
[ipp]
listen = "127.0.0.1"
port = {_free_port()}
[queues.demo]
printer = "folder:out"
default = true
[queues.mono]
printer = "ipp://10.0.0.7/ipp/print"
mode = "hold"
""")
    with Database(state / "db") as db:  # closed again: LMDB allows one open per process
        ids = trio.run(_fill, JobStore(db, state / "spool"))
    return cfg, ids


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reload(cfg: Path):
    s = config.load(cfg)
    db = Database(s.node.state_dir / "db", readonly=True)
    return db, JobStore(db, s.node.state_dir / "spool")


def test_jobs_list_table(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "list", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "QUEUE", "STATE", "USER"]
    rows = {int(line.split()[0]): line for line in lines[1:]}
    assert set(rows) == {ids["alice"], ids["bob"]}  # not-completed by default
    assert "pending" in rows[ids["alice"]] and "report.pdf" in rows[ids["alice"]]
    assert "2.0 kB" in rows[ids["alice"]]
    assert _dt.datetime.fromtimestamp(1_700_000_000).strftime("%Y-%m-%d %H:%M:%S") in rows[ids["alice"]]
    assert "pending-held" in rows[ids["bob"]] and "job-hold-until-specified" in rows[ids["bob"]]


def test_jobs_list_filters(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "list", "-c", str(cfg), "--which", "all", "--json"]) == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == sorted(ids.values())
    assert cli.main(["jobs", "list", "-c", str(cfg), "--which", "completed", "--json"]) == 0
    (done,) = json.loads(capsys.readouterr().out)
    assert done["id"] == ids["done"] and done["state_keyword"] == "completed" and done["pages"] == 3
    assert cli.main(["jobs", "list", "-c", str(cfg), "--queue", "mono", "--json"]) == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [ids["bob"]]
    assert cli.main(["jobs", "list", "-c", str(cfg), "--which", "all", "--user", "alice", "--json"]) == 0
    assert [j["id"] for j in json.loads(capsys.readouterr().out)] == [ids["alice"], ids["done"]]
    assert cli.main(["jobs", "list", "-c", str(cfg), "--user", "carol"]) == 0
    assert "no not-completed jobs of carol" in capsys.readouterr().out


def test_jobs_list_json_fields(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "list", "-c", str(cfg), "--json"]) == 0
    jobs = {j["id"]: j for j in json.loads(capsys.readouterr().out)}
    a = jobs[ids["alice"]]
    assert a["queue"] == "demo" and a["user"] == "alice" and a["state"] == 3
    assert a["state_keyword"] == "pending" and a["size"] == len(PDF)
    assert a["documents"][0]["format"] == "application/pdf"
    assert "attributes" not in a  # list is a summary; show has them
    assert jobs[ids["bob"]]["delivery"]["phase"] == "sent"


def test_jobs_list_with_state_dir_option(node, capsys):
    cfg, ids = node
    state = config.load(cfg).node.state_dir
    assert cli.main(["jobs", "list", "--state-dir", str(state), "--json", "--which", "all"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_jobs_list_without_state(tmp_path, capsys):
    assert cli.main(["jobs", "list", "--state-dir", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "no node state" in err and str(tmp_path / "nothing") in err
    assert not (tmp_path / "nothing").exists()  # looking must not create a node


def test_jobs_show(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "show", "-c", str(cfg), str(ids["alice"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"job {ids['alice']}\n")
    for text in ("queue             demo", "pending (3)", "user              alice", "host              ws1",
                 "application/pdf", "phase             none", "copies", "two-sided-long-edge",
                 "1-3", "600x600dpi", "Bericht [de]", "(no-value)", "media-size-name=iso_a4_210x297mm"):
        assert text in out, text
    assert cli.main(["jobs", "show", "-c", str(cfg), str(ids["bob"])]) == 0
    out = capsys.readouterr().out
    assert "phase             sent" in out and "ipp://10.0.0.7/ipp/print/41" in out


def test_jobs_show_timing(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "show", "-c", str(cfg), str(ids["done"])]) == 0
    out = capsys.readouterr().out
    for text in ("timing", "analysed          250.0 ms after it arrived", "admission         0.013 ms",
                 "charge            2.500 ms", "completed         100000.0 ms after it arrived"):
        assert text in out, text
    assert cli.main(["jobs", "show", "-c", str(cfg), str(ids["alice"])]) == 0
    assert "timing" not in capsys.readouterr().out  # not analysed yet: nothing to show


def test_jobs_show_json(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "show", "--json", "-c", str(cfg), str(ids["alice"])]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["attributes"]["copies"] == 2
    assert j["attributes"]["page-ranges"] == {"lower": 1, "upper": 3}
    assert j["attributes"]["media-col"] == {"media-size-name": "iso_a4_210x297mm"}
    assert j["attributes"]["job-hold-until"] == {"out-of-band": "no-value"}
    assert j["delivery"]["phase"] == "none"


def test_jobs_show_unknown_id(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "show", "-c", str(cfg), "999"]) == 1
    assert "no job 999" in capsys.readouterr().err


def test_jobs_cancel_stopped_node(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["alice"])]) == 0
    assert "node not running" in capsys.readouterr().out
    db, store = _reload(cfg)
    with db:
        job = store.get(ids["alice"])
        assert job.state == JobState.CANCELED
        assert job.state_reasons == ["job-canceled-by-operator"]
        assert job.completed is not None
        assert store.get(ids["bob"]).state == JobState.PENDING_HELD  # untouched


def test_jobs_cancel_warns_when_the_printer_has_the_job(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["bob"])]) == 0
    assert "ipp://10.0.0.7/ipp/print/41" in capsys.readouterr().err


def test_jobs_cancel_final_job(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["done"])]) == 1
    assert "already completed" in capsys.readouterr().err


def test_jobs_cancel_unknown_id(node, capsys):
    cfg, ids = node
    assert cli.main(["jobs", "cancel", "-c", str(cfg), "999"]) == 1
    assert "no job 999" in capsys.readouterr().err


class _FakeNode:
    """An HTTP server on the node's IPP port that answers every request with `status`."""

    def __init__(self, port: int, status: int = Status.OK, message: str = ""):
        self.requests: list[tuple[str, Message]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req, _ = codec.decode(body)
                outer.requests.append((self.path, req))
                resp = Message(version=(2, 0), code=status, request_id=req.request_id)
                g = resp.add_group(Tag.OPERATION)
                g.add("attributes-charset", Tag.CHARSET, "utf-8")
                g.add("attributes-natural-language", Tag.LANGUAGE, "en")
                if message:
                    g.add("status-message", Tag.TEXT, message)
                data = codec.encode(resp)
                self.send_response(200)
                self.send_header("Content-Type", "application/ipp")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_jobs_cancel_running_node_sends_cancel_job(node, capsys):
    cfg, ids = node
    port = config.load(cfg).ipp.port
    with _FakeNode(port) as fake:
        assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["bob"])]) == 0
    assert "by the running node" in capsys.readouterr().out
    ((path, req),) = fake.requests
    assert path == "/ipp/print/mono"
    assert req.code == Op.CANCEL_JOB
    op = req.operation
    assert op.value("printer-uri") == f"ipp://127.0.0.1:{port}/ipp/print/mono"
    assert op.value("job-id") == ids["bob"]
    assert op.value("requesting-user-name") == "bob"
    assert op.value("attributes-charset") == "utf-8"
    db, store = _reload(cfg)  # the CLI left the record to the node
    with db:
        assert store.get(ids["bob"]).state == JobState.PENDING_HELD


def test_jobs_cancel_running_node_refuses(node, capsys):
    cfg, ids = node
    port = config.load(cfg).ipp.port
    with _FakeNode(port, Status.NOT_POSSIBLE, "job is being printed"):
        assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["alice"])]) == 1
    err = capsys.readouterr().err
    assert "not-possible" in err and "job is being printed" in err


def test_jobs_subprocess(node):
    cfg, ids = node
    r = run("jobs", "list", "--config", str(cfg), "--json", "--which", "all")
    assert r.returncode == 0, r.stderr
    assert sorted(j["id"] for j in json.loads(r.stdout)) == sorted(ids.values())
    r = run("jobs", "list", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "report.pdf" in r.stdout and "\x1b[" not in r.stdout  # no colour codes in a pipe
    r = run("jobs", "show", str(ids["alice"]), env={config.ENV_CONFIG: str(cfg)})
    assert r.returncode == 0, r.stderr
    assert "two-sided-long-edge" in r.stdout
    r = run("jobs", "show", "12345", "--config", str(cfg))
    assert r.returncode == 1 and "no job 12345" in r.stderr and "Traceback" not in r.stderr
    r = run("jobs", "cancel", str(ids["alice"]), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    r = run("jobs", "list", "--config", str(cfg), "--which", "completed", "--json")
    assert {j["id"]: j["state_keyword"] for j in json.loads(r.stdout)} == {
        ids["alice"]: "canceled", ids["done"]: "completed"}


# -- the real node: `spoolproxy serve` in a child process ------------------------------------

import queue as _queue  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402


class LiveNode:
    def __init__(self, tmp_path: Path):
        self.port = _free_port()
        self.config = write(tmp_path, f"""
[node]
state_dir = "{tmp_path / 'live-state'}"
[ipp]
listen = "127.0.0.1"
port = {self.port}
[web]
listen = "127.0.0.1"
port = 0
[lpd]
listen = "127.0.0.1"
port = 0
[queues.held]
printer = "folder:out"
mode = "hold"
default = true
[queues.stuck]  # nothing listens there: its jobs wait for the printer
printer = "socket://127.0.0.1:{_free_port()}"
retry_initial = 30
""", name="live.toml")
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT)
        e.pop(config.ENV_CONFIG, None)
        e.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "spoolproxy", "serve", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=e,
                                     cwd=tmp_path)
        self.lines: list[str] = []
        self._q: _queue.Queue = _queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern: str, limit: float = 120.0) -> str:
        """The first stderr line matching pattern (the limit only guards against a hang)."""
        for line in self.lines:
            if re.search(pattern, line):
                return line
        while True:
            try:
                line = self._q.get(timeout=limit)
            except _queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; stderr so far:\n" + "\n".join(self.lines))
            if line is None:
                raise AssertionError(f"node exited ({self.proc.wait()}) before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=120)
        while (line := self._q.get(timeout=120)) is not None:
            self.lines.append(line)
        return rc


@pytest.fixture
def live(tmp_path):
    node = LiveNode(tmp_path)
    try:
        node.wait_for(r"/ipp/print/held")
        yield node
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
        node._reader.join(timeout=120)
        node.proc.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_logs_its_listener_and_stops_cleanly(live, sig):
    line = live.wait_for(r"/ipp/print/held")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO  \w+: ", line), line
    assert f":{live.port}/ipp/print/held" in line
    assert live.stop(sig) == 0
    text = "\n".join(live.lines)
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text


def _print_job(port: int, queue: str, user: str, name: str) -> int:
    from spoolproxy.ipp.client import IppClient, check, new_request

    async def go() -> int:
        uri = f"ipp://127.0.0.1:{port}/ipp/print/{queue}"
        async with IppClient(uri) as c:
            req = new_request(Op.PRINT_JOB, uri, user=user)
            req.operation.add("job-name", Tag.NAME, name)
            req.operation.add("document-format", Tag.MIME_TYPE, "application/pdf")
            resp = check(await c.request(req, PDF))
            return resp.group(Tag.JOB).value("job-id")
    return trio.run(go)


def test_jobs_against_a_running_node(live):
    job_id = _print_job(live.port, "stuck", "carol", "payslip.pdf")
    r = run("jobs", "list", "--config", str(live.config), "--json")
    assert r.returncode == 0, r.stderr
    (job,) = json.loads(r.stdout)
    assert (job["id"], job["user"], job["name"], job["queue"]) == (job_id, "carol", "payslip.pdf", "stuck")
    assert job["state_keyword"] in ("pending", "processing", "processing-stopped")
    r = run("jobs", "cancel", str(job_id), "--config", str(live.config))
    assert r.returncode == 0, r.stderr
    assert "by the running node" in r.stdout
    r = run("jobs", "show", str(job_id), "--config", str(live.config), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state_keyword"] == "canceled"
    r = run("jobs", "cancel", str(job_id), "--config", str(live.config))
    assert r.returncode == 1 and "already canceled" in r.stderr
    assert live.stop() == 0


# -- is the node running? -------------------------------------------------------------------


def test_jobs_cancel_with_a_held_node_lock_but_no_answer(node, capsys):
    import fcntl
    cfg, ids = node
    state = config.load(cfg).node.state_dir
    with open(state / cli.LOCK_FILE, "w") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["alice"])]) == 1
        assert "does not answer" in capsys.readouterr().err
    # released: a stopped node, the record is changed directly
    assert cli.main(["jobs", "cancel", "-c", str(cfg), str(ids["alice"])]) == 0
    assert "node not running" in capsys.readouterr().out


def test_jobs_cancel_cannot_tell_with_port_0(node, tmp_path, capsys):
    cfg, ids = node
    state = config.load(cfg).node.state_dir
    zero = write(tmp_path, f'[node]\nstate_dir = "{state}"\n[ipp]\nport = 0\n', name="zero.toml")
    assert cli.main(["jobs", "cancel", "-c", str(zero), str(ids["alice"])]) == 1
    assert "ipp.port is 0" in capsys.readouterr().err
    (state / cli.LOCK_FILE).touch()  # a lock file nobody holds: the node is stopped
    assert cli.main(["jobs", "cancel", "-c", str(zero), str(ids["alice"])]) == 0
