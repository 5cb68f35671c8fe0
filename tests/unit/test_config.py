"""spoolproxy.config: defaults, overrides, and an error that names its key for every mistake."""
from __future__ import annotations

from pathlib import Path

import pytest

from spoolproxy import config
from spoolproxy.config import ConfigError, Settings


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    return str(e.value)


def error_lines(tmp_path: Path, text: str) -> list[str]:
    msg = error_of(tmp_path, text)
    lines = msg.splitlines()
    src = str(tmp_path / "site.toml")
    assert all(line.startswith(src + ": ") for line in lines), msg
    return lines


# -- defaults ---------------------------------------------------------------------------


def test_defaults_are_a_standalone_node_with_a_demo_queue():
    s = config.load()
    assert s.node.role == "standalone"
    assert s.node.state_dir == Path("spoolproxy-state")
    assert s.ipp.port == 8631
    assert s.ipp.listen == "0.0.0.0"
    assert list(s.queues) == ["demo"]
    assert s.default_queue == "demo"
    assert s.queues["demo"].mode == "direct"
    assert s.queues["demo"].printer.startswith("folder:")
    assert s.folder_path("demo") == Path("spoolproxy-state") / "printed"


def test_empty_file_gives_the_defaults(tmp_path):
    assert config.load(write(tmp_path, "")) == config.load()


def test_settings_are_frozen():
    s = config.load()
    with pytest.raises(Exception):
        s.ipp.port = 1  # type: ignore[misc]


def test_a_full_file(tmp_path):
    s = config.load(write(tmp_path, """
[node]
name = "site-a"
role = "site"
state_dir = "/var/lib/spoolproxy"
log_level = "DEBUG"

[ipp]
listen = "127.0.0.1"
port = 631
hostname = "print.example.com"

[sync]
primary = "https://hq.example.com:8632/"
key_file = "/etc/spoolproxy/site.key"

[queues.mono]
printer = "ipp://10.0.0.7:631/ipp/print"
mode = "hold"

[queues.colour]
printer = "socket://10.0.0.8"
default = true

[queues."floor1.files"]
printer = "folder:///srv/printed"
"""))
    assert s.node.role == "site"
    assert s.sync.primary == "https://hq.example.com:8632"
    assert s.node.log_level == "debug"
    assert s.ipp.port == 631
    assert s.default_queue == "colour"
    assert s.queues["mono"].mode == "hold"
    assert s.folder_path("floor1.files") == Path("/srv/printed")
    assert s.queue_uri("mono") == "ipp://print.example.com:631/ipp/print/mono"
    assert s.queue_uri("mono", host="::1") == "ipp://[::1]:631/ipp/print/mono"
    assert s.local_host == "127.0.0.1"


def test_default_queue_without_a_default_flag_is_the_first(tmp_path):
    s = config.load(write(tmp_path, '[queues.b]\nprinter = "folder:b"\n[queues.a]\nprinter = "folder:a"\n'))
    assert s.default_queue == "b"


def test_folder_forms(tmp_path):
    s = config.from_mapping({"node": {"state_dir": "/st"}, "queues": {
        "rel": {"printer": "folder:out"}, "abs": {"printer": "folder:/abs/out"},
        "url": {"printer": "folder:///url/out"}}})
    assert s.folder_path("rel") == Path("/st/out")
    assert s.folder_path("abs") == Path("/abs/out")
    assert s.folder_path("url") == Path("/url/out")


# -- overrides ----------------------------------------------------------------------------


def test_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path, '[node]\nstate_dir = "from-file"\n[ipp]\nport = 9000\nlisten = "127.0.0.1"\n')
    s = config.load(path, overrides={"node": {"state_dir": str(tmp_path / "st"), "log_level": "warning"},
                                     "ipp": {"port": 9100}})
    assert s.node.state_dir == tmp_path / "st"
    assert s.node.log_level == "warning"
    assert s.ipp.port == 9100
    assert s.ipp.listen == "127.0.0.1"  # not overridden


def test_none_overrides_leave_the_file_alone(tmp_path):
    path = write(tmp_path, "[ipp]\nport = 9000\n")
    s = config.load(path, overrides={"node": {"state_dir": None}, "ipp": {"port": None, "listen": None}})
    assert s.ipp.port == 9000
    assert s.node.state_dir == Path("spoolproxy-state")


def test_overrides_without_a_file():
    s = config.load(None, overrides={"ipp": {"port": 1631}})
    assert s.ipp.port == 1631
    assert list(s.queues) == ["demo"]


def test_overrides_are_validated_too():
    with pytest.raises(ConfigError, match=r"ipp\.port"):
        config.load(None, overrides={"ipp": {"port": 123456}})


def test_override_on_a_section_that_is_not_a_table(tmp_path):
    lines = error_lines(tmp_path, 'ipp = 5\n')  # no override: plain type error
    assert any(": ipp: " in line for line in lines)
    path = write(tmp_path, "ipp = 5\n")
    with pytest.raises(ConfigError, match=r": ipp: must be a table"):
        config.load(path, overrides={"ipp": {"port": 1}})


# -- errors: each one names the file and the key --------------------------------------------


def test_unknown_top_level_key(tmp_path):
    assert error_lines(tmp_path, "colour = true\n") == [f"{tmp_path / 'site.toml'}: colour: unknown key"]


def test_unknown_key_in_a_section(tmp_path):
    (line,) = error_lines(tmp_path, "[ipp]\nprot = 631\n")
    assert line.endswith(": ipp.prot: unknown key")


def test_unknown_key_in_a_queue(tmp_path):
    (line,) = error_lines(tmp_path, '[queues.demo]\nprinter = "folder:x"\nduplex = true\n')
    assert line.endswith(": queues.demo.duplex: unknown key")


def test_queue_names_with_dots_are_quoted_like_toml(tmp_path):
    (line,) = error_lines(tmp_path, '[queues."a.b"]\nprinter = "folder:x"\nmode = "later"\n')
    assert ': queues."a.b".mode: ' in line
    assert "'direct', 'hold' or 'findme'" in line
    assert "'later'" in line


@pytest.mark.parametrize("port", [-1, 65536, 100000])
def test_bad_port(tmp_path, port):
    (line,) = error_lines(tmp_path, f"[ipp]\nport = {port}\n")
    assert ": ipp.port: " in line
    assert str(port) in line


def test_port_of_the_wrong_type(tmp_path):
    (line,) = error_lines(tmp_path, '[ipp]\nport = "ipp"\n')
    assert ": ipp.port: " in line and "integer" in line


@pytest.mark.parametrize("printer, why", [
    ("lpr://host/q", "scheme 'lpr'"),
    ("10.0.0.7", "scheme '(none)'"),
    ("ipp:///ipp/print", "no host"),
    ("socket://", "no host"),
    ("folder:", "needs a directory"),
    ("ipp://host:99999/x", "port"),
])
def test_bad_printer(tmp_path, printer, why):
    (line,) = error_lines(tmp_path, f'[queues.q]\nprinter = "{printer}"\n')
    assert ": queues.q.printer: " in line
    assert why in line


def test_every_printer_scheme_that_is_accepted(tmp_path):
    for printer in ("ipp://h/ipp/print", "ipps://h:443/x", "http://h:631/x", "socket://h:9100", "folder:x"):
        config.from_mapping({"queues": {"q": {"printer": printer}}})


def test_missing_printer(tmp_path):
    (line,) = error_lines(tmp_path, '[queues.q]\nmode = "hold"\n')
    assert ": queues.q.printer: " in line and "missing" in line


def test_two_default_queues(tmp_path):
    (line,) = error_lines(tmp_path, """
[queues.a]
printer = "folder:a"
default = true
[queues.b]
printer = "folder:b"
default = true
""")
    assert ": queues.b.default: " in line
    assert "queues.a.default" in line


def test_two_queues_with_the_same_folder(tmp_path):
    (line,) = error_lines(tmp_path, """
[node]
state_dir = "/st"
[queues.a]
printer = "folder:out"
[queues.b]
printer = "folder:///st/out/"
""")
    assert ": queues.b.printer: " in line
    assert "'a'" in line


@pytest.mark.parametrize("folder", ["folder:.", "folder:db", "folder:spool/x"])
def test_folder_inside_the_nodes_own_state(tmp_path, folder):
    (line,) = error_lines(tmp_path, f'[queues.a]\nprinter = "{folder}"\n')
    assert ": queues.a.printer: " in line


def test_bad_queue_name(tmp_path):
    (line,) = error_lines(tmp_path, '[queues."my queue"]\nprinter = "folder:x"\n')
    assert ': queues."my queue": ' in line


def test_queue_that_is_not_a_table(tmp_path):
    (line,) = error_lines(tmp_path, '[queues]\ndemo = "folder:x"\n')
    assert ": queues.demo: must be a table" in line


def test_bad_enum_values(tmp_path):
    lines = error_lines(tmp_path, '[node]\nrole = "secondary"\nlog_level = "loud"\n')
    assert any(": node.role: " in line and "'secondary'" in line for line in lines)
    assert any(": node.log_level: " in line for line in lines)


def test_retry_order(tmp_path):
    (line,) = error_lines(tmp_path, '[queues.a]\nprinter = "folder:a"\nretry_initial = 90\n')
    assert ": queues.a.retry_initial: " in line and "retry_max" in line


def test_several_errors_are_all_reported(tmp_path):
    lines = error_lines(tmp_path, """
bogus = 1
[ipp]
port = 70000
[queues.a]
printer = "lpr://x"
""")
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {"bogus", "ipp.port", "queues.a.printer"}


def test_messages_carry_no_pydantic_noise(tmp_path):
    msg = error_of(tmp_path, "[ipp]\nport = 70000\nprot = 1\n[node]\nrole = 3\n")
    assert "errors.pydantic.dev" not in msg
    assert "Value error" not in msg
    assert "Input should" not in msg
    assert "validation error" not in msg


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "[ipp]\nport = \n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not valid TOML")
    assert "line 2" in msg


def test_not_utf8(tmp_path):
    path = tmp_path / "site.toml"
    path.write_bytes(b'[node]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(path)


def test_file_not_found(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value) == f"{path}: file not found"


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        config.load(tmp_path)


def test_from_mapping_names_the_source():
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"ipp": {"port": -5}}, source="test-source")
    assert str(e.value).startswith("test-source: ipp.port: ")


def test_model_level_checks_also_run_without_load():
    with pytest.raises(Exception):
        Settings.model_validate({"queues": {"a": {"printer": "folder:a", "default": True},
                                            "b": {"printer": "folder:b", "default": True}}})


def test_default_path_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(config.ENV_CONFIG, raising=False)
    assert config.default_path() is None
    monkeypatch.setenv(config.ENV_CONFIG, str(tmp_path / "x.toml"))
    assert config.default_path() == tmp_path / "x.toml"
    monkeypatch.setenv(config.ENV_CONFIG, "")
    assert config.default_path() is None


@pytest.mark.parametrize("text, key, words", [
    ('[node]\nrole = "site"\n', "sync.primary", "URL of its primary"),
    ('[node]\nrole = "site"\n[sync]\nprimary = "http://hq:8632"\n', "sync.key", "spoolproxy sites add"),
    ('[sync]\nprimary = "http://hq:8632"\n', "sync.primary", "only a site"),
    ('[node]\nrole = "site"\n[sync]\nprimary = "ftp://hq"\nkey = "k"\n', "sync.primary", "http://"),
    ('[node]\nrole = "primary"\n[web]\nenabled = false\n', "web.enabled", "serves its sites"),
    ('[offline]\ncredit = "maybe"\n', "offline.credit", "last-known"),
    ('[offline]\noffline_overdraft = -1\n', "offline.offline_overdraft", "greater than or equal"),
])
def test_roles_sync_and_offline_policy_errors_name_the_key(tmp_path, text, key, words):
    msg = error_of(tmp_path, text)
    assert f": {key}: " in msg and words in msg, msg
