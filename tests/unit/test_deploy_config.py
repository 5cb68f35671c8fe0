"""The files in deploy/ stay valid as the configuration schema changes."""
from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

from spoolproxy import config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_validates():
    settings = config.load(DEPLOY / "spoolproxy.toml")
    assert settings.ipp.port == 631
    assert settings.node.state_dir == Path("/var/lib/spoolproxy")
    schemes = {q.printer.split(":", 1)[0] for q in settings.queues.values() if q.printer}
    assert {"ipp", "socket"} <= schemes  # an IPP printer and an AppSocket printer
    assert settings.default_queue in settings.queues
    assert {q.mode for q in settings.queues.values()} == {"direct", "hold", "findme"}


def test_example_config_sets_every_key_the_schema_has():
    """The example doubles as documentation: it shows every [node] and [ipp] key and every
    queue key at least once, so a new key must be added (and explained) there too."""
    with open(DEPLOY / "spoolproxy.toml", "rb") as f:
        data = tomllib.load(f)
    assert set(data["node"]) == set(config.NodeSettings.model_fields)
    assert set(data["ipp"]) == set(config.IppSettings.model_fields)
    assert set(data["lpd"]) == set(config.LpdSettings.model_fields)
    assert set(data["web"]) == set(config.WebSettings.model_fields)
    assert set(data["ledger"]) == set(config.LedgerSettings.model_fields)
    assert set(data["release"]) == set(config.ReleaseSettings.model_fields)
    used = set().union(*(q.keys() for q in data["queues"].values()))
    assert used == set(config.QueueSettings.model_fields)
    assert set().union(*(q.get("snmp", {}).keys() for q in data["queues"].values())) \
        == set(config.SnmpSettings.model_fields)
    from spoolproxy.ledger.cost import CostSettings
    from spoolproxy.policy.filters import FilterSettings
    assert set().union(*(q.get("cost", {}).keys() for q in data["queues"].values())) \
        == set(CostSettings.model_fields)
    assert set().union(*(q.get("filters", {}).keys() for q in data["queues"].values())) \
        == set(FilterSettings.model_fields)


def test_service_unit_runs_the_example_paths():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keys are case-sensitive in systemd units
    unit.read(DEPLOY / "spoolproxy.service")
    service = unit["Service"]
    assert service["User"] == "spoolproxy"
    assert service["StateDirectory"] == "spoolproxy"
    argv = service["ExecStart"].split()
    assert argv[0].endswith("/spoolproxy") and argv[1] == "serve"
    assert argv[argv.index("--config") + 1] == "/etc/spoolproxy/spoolproxy.toml"
    assert argv[argv.index("--state-dir") + 1] == "/var/lib/spoolproxy"
    assert "/var/lib/spoolproxy" in service["ReadWritePaths"].split()
    assert "CAP_NET_BIND_SERVICE" in service["AmbientCapabilities"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"


def test_readme_config_shows_every_key_with_its_default():
    """README's configuration block documents every key and claims its values are the defaults."""
    readme = (DEPLOY.parent / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(block)
    assert config.from_mapping(data, "README.md") == config.load(None)
    commented = {line.split("#", 1)[1].split("=", 1)[0].strip()
                 for line in block.splitlines() if line.lstrip().startswith("# ") and "=" in line}
    assert set(data["node"]) | commented >= set(config.NodeSettings.model_fields)
    assert set(data["ipp"]) | commented >= set(config.IppSettings.model_fields)
    assert set(data["lpd"]) | commented >= set(config.LpdSettings.model_fields)
    assert set(data["web"]) | commented >= set(config.WebSettings.model_fields)
    assert set(data["ledger"]) | commented >= set(config.LedgerSettings.model_fields)
    assert set(data["release"]) | commented >= set(config.ReleaseSettings.model_fields)
    (queue,) = data["queues"].values()
    assert set(queue) | commented >= set(config.QueueSettings.model_fields)
    assert set(queue["cost"]) | commented >= set(config.CostSettings.model_fields)
    assert set(queue["filters"]) | commented >= set(config.FilterSettings.model_fields)


def test_site_example_validates_and_shows_every_sync_key():
    settings = config.load(DEPLOY / "site.toml")
    assert settings.node.role == "site" and settings.sync.primary.startswith("https://")
    text = (DEPLOY / "site.toml").read_text()
    for key in config.SyncSettings.model_fields:
        assert f"\n{key} = " in text or f"\n# {key} = " in text, key
    with open(DEPLOY / "spoolproxy.toml", "rb") as f:
        assert set(tomllib.load(f)["offline"]) == set(config.OfflinePolicy.model_fields)
