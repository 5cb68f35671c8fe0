"""Fuzz target for the IPP codec (spoolproxy.ipp.codec).

    python tests/fuzz/fuzz_ipp_codec.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_ipp_codec.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed),
        which is also what happens without atheris (N = 10000).

``TestOneInput`` asserts that only CodecError escapes the decoders, that whatever
decodes re-encodes and decodes to the same Message, and that MessageReader fed in
pieces agrees with decode.
"""
from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

_harness.instrumented_import("spoolproxy.ipp.codec", __name__)
from spoolproxy.ipp.codec import (  # noqa: E402
    CodecError, Incomplete, MessageReader, decode, decode_attributes, encode, encode_attributes,
)
from spoolproxy.ipp.model import Tag  # noqa: E402
from spoolproxy.ipp.types import Attribute, Collection, Group, Message, Range, Resolution, TextLang  # noqa: E402


def _check(data: bytes) -> bool:
    """The checks of TestOneInput; True when ``data`` decoded."""
    try:
        msg, offset = decode(data)
    except Incomplete:
        msg, failure = None, Incomplete
    except CodecError:
        msg, failure = None, CodecError

    if msg is not None:
        assert 8 < offset <= len(data) and data[offset - 1] == Tag.END
        encoded = encode(msg)  # whatever decodes must be encodable ...
        again, end = decode(encoded)
        assert again == msg, f"round trip changed the message:\n{msg}\n{again}"  # ... to the same message
        assert end == len(encoded)
        assert encode(again) == encoded

    # MessageReader fed in three pieces (split points taken from the data) must agree.
    a = data[0] % (len(data) + 1) if data else 0
    b = a + (data[-1] % (len(data) - a + 1) if data else 0)
    reader = MessageReader()
    got = None
    try:
        for piece in (data[:a], data[a:b], data[b:]):
            got = reader.feed(piece)
    except Incomplete:
        raise AssertionError("MessageReader raised Incomplete")
    except CodecError:
        assert msg is None and failure is CodecError, "MessageReader failed where decode did not"
    else:
        if msg is None:
            assert got is None and failure is Incomplete, "MessageReader decoded what decode rejected"
        else:
            assert got == msg and reader.rest == data[offset:]

    # The stored-attribute decoder on the same bytes, past where a header would be.
    try:
        attrs = decode_attributes(data[9:])
    except CodecError:
        pass
    else:
        assert decode_attributes(encode_attributes(attrs)) == attrs
    return msg is not None


def TestOneInput(data: bytes) -> None:
    _check(data)


# --- the random / mutational loop -----------------------------------------------------------


def seed_corpus() -> list[bytes]:
    when = datetime(2024, 2, 29, 12, 30, 15, 700000, timezone(timedelta(hours=-3, minutes=-30)))
    media = Collection([
        Attribute.of("media-size", Tag.BEGIN_COLLECTION, Collection([
            Attribute.of("x-dimension", Tag.INTEGER, 21000),
            Attribute.of("y-dimension", Tag.INTEGER, 29700),
        ])),
        Attribute("media-source", Tag.KEYWORD, ["tray-1", "manual", None], [Tag.KEYWORD, Tag.NAME, Tag.NO_VALUE]),
    ])
    request = Message((2, 0), 0x0002, 1, [
        Group(Tag.OPERATION, [
            Attribute.of("attributes-charset", Tag.CHARSET, "utf-8"),
            Attribute.of("attributes-natural-language", Tag.LANGUAGE, "en"),
            Attribute.of("printer-uri", Tag.URI, "ipp://localhost:8631/ipp/print/demo"),
            Attribute.of("requesting-user-name", Tag.NAME, "alice"),
            Attribute.of("document-format", Tag.MIME_TYPE, "application/pdf"),
            Attribute.of("job-name", Tag.NAME_LANG, TextLang("Bericht", "de")),
        ]),
        Group(Tag.JOB, [
            Attribute.of("copies", Tag.INTEGER, 2),
            Attribute.of("sides", Tag.KEYWORD, "two-sided-long-edge"),
            Attribute.of("print-quality", Tag.ENUM, 5),
            Attribute.of("page-ranges", Tag.RANGE, Range(1, 3), Range(7, 9)),
            Attribute.of("printer-resolution", Tag.RESOLUTION, Resolution(600, 600, 3)),
            Attribute.of("media-col", Tag.BEGIN_COLLECTION, media, Collection()),
            Attribute.of("job-hold-until-time", Tag.DATE, when),
            Attribute.of("fidelity", Tag.BOOLEAN, True),
            Attribute.of("opaque", Tag.STRING, b"\x00\x01"),
            Attribute.of("vendor", Tag.EXTENSION, b"\x40\x00\x00\x07xyz"),
            Attribute.of("unassigned", 0x60, b"??"),
        ]),
    ])
    response = Message((1, 1), 0x0000, 1, [
        Group(Tag.OPERATION, [Attribute.of("status-message", Tag.TEXT, "successful-ok")]),
        Group(Tag.UNSUPPORTED_GROUP, [Attribute.of("x", Tag.UNSUPPORTED_VALUE)]),
        Group(Tag.JOB, [Attribute.of("job-id", Tag.INTEGER, 1)]),
        Group(Tag.JOB, [Attribute.of("job-id", Tag.INTEGER, 2)]),
    ])
    return [encode(request) + b"%PDF-1.7", encode(response), encode(Message()), b"\x02\x00\x00\x0b\x00\x00\x00\x01\x03"]


_INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x03, 0x0F, 0x10, 0x13, 0x21, 0x22, 0x31, 0x34, 0x35, 0x37, 0x4A, 0x7F, 0x80]
_INTERESTING_LENGTHS = [0, 1, 2, 3, 4, 8, 9, 11, 0x7FFF, 0x8000, 0xFFFF]


def _interesting_length(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    if i + 2 <= len(buf):
        buf[i : i + 2] = rng.choice(_INTERESTING_LENGTHS).to_bytes(2, "big")


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte(_INTERESTING_BYTES), _harness.insert_random(8), _harness.delete(8),
    _interesting_length, _harness.truncate, _harness.splice_tail, _harness.copy_within(16),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    """Run the target on ``iterations`` generated inputs; return how many ran."""
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed)


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_ipp_codec")


if __name__ == "__main__":
    main(sys.argv)
