"""spoolproxy.snmp.mib: hrPrinterDetectedErrorState bits -> IPP printer-state-reasons,
the IPP printer-state, the supplies table with RFC 3805's special values; and the
[queues.NAME.snmp] configuration (spoolproxy.config.SnmpSettings)."""
from __future__ import annotations

import pytest

from spoolproxy import config
from spoolproxy.config import ConfigError
from spoolproxy.snmp import mib
from spoolproxy.snmp.mib import (
    ERROR_STATE_BITS,
    REASON_KEYWORDS,
    Supply,
    counter_unit,
    error_reasons,
    parse_supplies,
    printer_state,
    text,
)


def bits(*numbers: int, octets: int = 2) -> bytes:
    """hrPrinterDetectedErrorState with the given bits set (bit 0 = MSB of octet 0)."""
    out = bytearray(octets)
    for n in numbers:
        out[n // 8] |= 0x80 >> (n % 8)
    return bytes(out)


# --------------------------------------------------------------------------- error state


EXPECTED = {
    "lowPaper": "media-low-warning",
    "noPaper": "media-empty-error",
    "lowToner": "toner-low-warning",
    "noToner": "toner-empty-error",
    "doorOpen": "door-open-error",
    "jammed": "media-jam-error",
    "offline": "offline-report",
    "serviceRequested": "other-warning",
    "inputTrayMissing": "input-tray-missing-error",
    "outputTrayMissing": "output-tray-missing-error",
    "markerSupplyMissing": "marker-supply-missing-error",
    "outputNearFull": "output-area-almost-full-warning",
    "outputFull": "output-area-full-error",
    "inputTrayEmpty": "media-needed-warning",
    "overduePreventMaint": "other-warning",
}


def test_the_table_follows_rfc_2790_bit_numbers():
    assert [(b, c) for b, c, _ in ERROR_STATE_BITS] == list(enumerate(EXPECTED))
    assert {c: k for _, c, k in ERROR_STATE_BITS} == EXPECTED
    assert REASON_KEYWORDS == set(EXPECTED.values())


@pytest.mark.parametrize("bit,condition,keyword", ERROR_STATE_BITS)
def test_each_bit_alone(bit, condition, keyword):
    assert error_reasons(bits(bit)) == [keyword]


def test_bit_zero_is_the_most_significant_bit_of_the_first_octet():
    assert error_reasons(b"\x80") == ["media-low-warning"]           # lowPaper
    assert error_reasons(b"\x01") == ["other-warning"]               # serviceRequested (bit 7)
    assert error_reasons(b"\x00\x80") == ["input-tray-missing-error"]  # bit 8
    assert error_reasons(b"\x00\x02") == ["other-warning"]           # overduePreventMaint (bit 14)
    assert error_reasons(b"\x00\x01") == []                          # bit 15: not defined


def test_two_octet_values():
    # jammed (5) + noToner (3) + outputFull (12)
    assert error_reasons(b"\x14\x08") == ["toner-empty-error", "media-jam-error", "output-area-full-error"]
    assert error_reasons(bits(0, 1, 13)) == ["media-low-warning", "media-empty-error", "media-needed-warning"]
    everything = error_reasons(b"\xff\xff")
    assert everything == list(dict.fromkeys(EXPECTED.values()))


def test_short_empty_and_long_values():
    assert error_reasons(b"") == []
    assert error_reasons(b"\x00") == []
    assert error_reasons(b"\x04") == ["media-jam-error"]       # one octet: bits 0-7 only
    assert error_reasons(b"\x04\x00\xff\xff") == ["media-jam-error"]  # octets beyond the second: ignored
    assert error_reasons(b"\x00\x00") == []


def test_reasons_are_not_repeated():
    # serviceRequested and overduePreventMaint both read "other-warning"
    assert error_reasons(bits(7, 14)) == ["other-warning"]


# --------------------------------------------------------------------------- printer state


@pytest.mark.parametrize("device,printer,reasons,state", [
    (2, 3, [], mib.IDLE),
    (2, 4, [], mib.PROCESSING),          # printing
    (2, 5, [], mib.PROCESSING),          # warmup
    (3, 3, ["toner-low-warning"], mib.IDLE),
    (3, 4, ["media-low-warning"], mib.PROCESSING),
    (2, 3, ["media-jam-error"], mib.STOPPED),
    (2, 4, ["media-jam-error"], mib.STOPPED),
    (5, 1, [], mib.STOPPED),             # device down
    (5, 3, ["offline-report"], mib.STOPPED),
    (2, 3, ["offline-report"], mib.IDLE),  # a report alone does not stop it
    (1, 2, [], mib.IDLE),                # unknown/unknown
    (None, None, [], mib.IDLE),
    (None, 4, [], mib.PROCESSING),
    (None, None, ["door-open-error"], mib.STOPPED),
])
def test_printer_state(device, printer, reasons, state):
    assert printer_state(device, printer, reasons) == state


def test_jam_and_no_toner_stop_the_printer():
    reasons = error_reasons(bits(5, 3))
    assert printer_state(2, 3, reasons) == 5


# --------------------------------------------------------------------------- values


def test_counter_unit_and_text():
    assert counter_unit(7) == "impressions"
    assert counter_unit(8) == "sheets"
    assert counter_unit(99) == "other"
    assert counter_unit(None) == "" and counter_unit(b"7") == "" and counter_unit(True) == ""
    assert text(b"HP LaserJet 4250\x00\x00 ") == "HP LaserJet 4250"
    assert text("Caf\xe9".encode("utf-8")) == "Caf\xe9"
    assert text(b"Caf\xe9") == "Caf\xe9"   # not UTF-8: Latin-1
    assert text(None) == "" and text(5) == ""


# --------------------------------------------------------------------------- supplies


def cells(device: int, index: int, **columns) -> list[tuple[str, object]]:
    number = {"klass": 4, "type": 5, "description": 6, "unit": 7, "max": 8, "level": 9}
    return [(f"{mib.PRT_MARKER_SUPPLIES_ENTRY}.{number[k]}.{device}.{index}", v) for k, v in columns.items()]


def test_supplies_with_percentages():
    rows = (cells(1, 1, description=b"Black Toner", type=3, klass=3, unit=19, max=100, level=73)
            + cells(1, 2, description=b"Cyan Ink", type=6, klass=3, unit=15, max=2000, level=500))
    assert parse_supplies(rows) == [
        Supply(1, "Black Toner", "toner", 73, 100, 73, "percent", "supplyThatIsConsumed"),
        Supply(2, "Cyan Ink", "ink-cartridge", 500, 2000, 25, "tenthsOfMilliliters", "supplyThatIsConsumed"),
    ]


@pytest.mark.parametrize("level,maximum,percent", [
    (-1, 100, None),   # other: no restriction
    (-2, 100, None),   # unknown
    (-3, 100, None),   # some remaining
    (50, -1, None),
    (50, -2, None),
    (50, 0, None),
    (0, 100, 0),
    (100, 100, 100),
    (150, 100, 100),   # an agent over its own maximum: capped
    (1, 3, 33),
])
def test_special_levels_have_no_percentage(level, maximum, percent):
    [s] = parse_supplies(cells(1, 1, level=level, max=maximum))
    assert (s.level, s.max, s.percent) == (level, maximum, percent)


def test_supplies_of_other_devices_and_stray_oids_are_left_out():
    rows = (cells(2, 3, description=b"Waste", type=4, klass=4, level=10, max=100)
            + cells(1, 1, description=b"Toner", type=3, level=5, max=10)
            + [("1.3.6.1.2.1.43.11.1.1.9.1", 5), ("1.3.6.1.2.1.43.10.2.1.4.1.1", 7),
               (f"{mib.PRT_MARKER_SUPPLIES_ENTRY}.9.1.1.7", 3)])
    assert [s.index for s in parse_supplies(rows, device_index=1)] == [1]
    both = parse_supplies(rows)
    assert [(s.index, s.kind, s.supply_class) for s in both] == [(1, "toner", "other"),
                                                                 (3, "waste-toner", "receptacleThatIsFilled")]


def test_missing_and_odd_cells_read_as_unknown():
    [s] = parse_supplies(cells(1, 4, description=b"Drum", type=999, level=b"x"))
    assert s == Supply(4, "Drum", "other", -2, -2, None, "unknown", "other")
    [t] = parse_supplies(cells(1, 1, level=5))
    assert (t.description, t.kind) == ("", "unknown")


def test_supplies_come_sorted_by_index():
    rows = cells(1, 10, level=1, max=10) + cells(1, 2, level=1, max=10) + cells(1, 7, level=1, max=10)
    assert [s.index for s in parse_supplies(rows)] == [2, 7, 10]


# --------------------------------------------------------------------------- configuration


def load(queue: dict, name: str = "demo", **others) -> config.Settings:
    return config.from_mapping({"queues": {name: queue, **others}}, "site.toml")


def error_of(queue: dict, **others) -> str:
    with pytest.raises(ConfigError) as e:
        load(queue, **others)
    return str(e.value)


def test_snmp_defaults_and_host_from_the_printer_uri():
    q = load({"printer": "ipp://printer1.example.com:631/ipp/print", "snmp": {}}).queues["demo"]
    s = q.snmp
    assert (s.host, s.port, s.version, s.community, s.interval, s.timeout, s.retries, s.settle) == \
        (None, 161, "2c", "public", 30.0, 2.0, 1, 60.0)
    assert q.snmp_host == "printer1.example.com"
    assert "public" not in repr(s)  # the community is a secret of sorts
    assert load({"printer": "socket://10.1.2.3:9100", "snmp": {"host": "10.1.2.4"}}).queues["demo"].snmp_host \
        == "10.1.2.4"
    assert load({"printer": "socket://10.1.2.3"}).queues["demo"].snmp is None


def test_snmp_versions_as_people_write_them():
    for written, version in ((1, "1"), ("1", "1"), ("2c", "2c"), (2, "2c"), ("2", "2c")):
        assert load({"printer": "socket://p", "snmp": {"version": written}}).queues["demo"].snmp.version == version
    assert "queues.demo.snmp.version: must be '1' or '2c'" in error_of({"printer": "socket://p",
                                                                        "snmp": {"version": "3"}})


@pytest.mark.parametrize("key,value,message", [
    ("port", 0, "queues.demo.snmp.port: must be greater than or equal to 1"),
    ("port", 70000, "queues.demo.snmp.port: must be less than or equal to 65535"),
    ("interval", 0, "queues.demo.snmp.interval: must be greater than 0"),
    ("timeout", -1, "queues.demo.snmp.timeout: must be greater than 0"),
    ("retries", 11, "queues.demo.snmp.retries: must be less than or equal to 10"),
    ("retries", -1, "queues.demo.snmp.retries: must be greater than or equal to 0"),
    ("settle", -1, "queues.demo.snmp.settle: must be greater than or equal to 0"),
    ("community", "", "queues.demo.snmp.community: must not be empty"),
    ("host", "printer 1", "queues.demo.snmp.host: must be a bare host name"),
    ("host", "snmp://printer", "queues.demo.snmp.host: must be a bare host name"),
    ("colour", True, "queues.demo.snmp.colour: unknown key"),
])
def test_snmp_errors_name_the_key(key, value, message):
    assert message in error_of({"printer": "ipp://p/ipp/print", "snmp": {key: value}})


def test_settle_may_be_zero_and_ipv6_hosts_lose_their_brackets():
    q = load({"printer": "ipp://[fd00::5]/ipp/print", "snmp": {"settle": 0, "host": "[fd00::6]"}}).queues["demo"]
    assert (q.snmp.settle, q.snmp_host) == (0, "fd00::6")
    assert load({"printer": "ipp://[fd00::5]/ipp/print", "snmp": {}}).queues["demo"].snmp_host == "fd00::5"


def test_a_folder_printer_needs_an_snmp_host():
    msg = error_of({"printer": "folder:printed", "snmp": {}})
    assert msg.startswith("site.toml: queues.demo.snmp.host: ") and "folder:" in msg
    assert load({"printer": "folder:printed", "snmp": {"host": "127.0.0.1", "port": 16161}}).queues["demo"].snmp_host \
        == "127.0.0.1"


def test_a_findme_queue_has_no_snmp():
    msg = error_of({"mode": "findme", "printers": ["a"], "snmp": {"host": "x"}}, a={"printer": "socket://p"})
    assert msg.startswith("site.toml: queues.demo.snmp: ") and "findme" in msg


def test_settings_from_a_toml_file(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[queues.lobby]\nprinter = "socket://10.0.0.9"\n'
                    '[queues.lobby.snmp]\nversion = "1"\ncommunity = "s3cret"\ninterval = 10\n')
    s = config.load(path).queues["lobby"].snmp
    assert (s.version, s.community, s.interval) == ("1", "s3cret", 10.0)
