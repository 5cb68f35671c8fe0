"""spoolproxy.ledger.cost: the cost model, with worked examples for every setting."""
from __future__ import annotations

import functools
from decimal import Decimal

import pytest
from pydantic import ValidationError

from spoolproxy import config
from spoolproxy.ipp import codec
from spoolproxy.ipp.model import Tag
from spoolproxy.ipp.types import Attribute
from spoolproxy.ledger.cost import (
    Cost, CostSettings, compute, format_money, job_cost, media_size, parse_money,
)
from spoolproxy.spool.job import Document, Job

ONE, LONG, SHORT = "one-sided", "two-sided-long-edge", "two-sided-short-edge"
A4, A3 = [21000, 29700], [29700, 42000]
LETTER = [21590, 27940]


def kind(n, color=False, sides=ONE, media=None, copies=1):
    return [n, color, sides, media, copies]


def cost(kinds, *, copies=1, sides=None, mono=False, **settings) -> Cost:
    """compute() of one document (``mono`` is compute's gray=True); the other keyword
    arguments make the settings."""
    return compute([kinds], CostSettings(**settings), copies=copies, sides=sides, gray=mono)


# --- money text ------------------------------------------------------------------------

@pytest.mark.parametrize("amount, digits, symbol, text", [
    (150, 2, "", "1.50"), (-5, 2, "", "-0.05"), (0, 2, "", "0.00"), (7, 2, "", "0.07"),
    (123456, 2, "", "1234.56"), (150, 0, "¥", "¥150"), (-5, 2, "$", "-$0.05"), (1500, 3, "", "1.500"),
])
def test_format_money(amount, digits, symbol, text):
    assert format_money(amount, digits, symbol) == text


def test_format_money_refuses_floats():
    with pytest.raises(TypeError, match="int of minor units"):
        format_money(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, digits, amount", [
    ("1.5", 2, 150), ("-0.05", 2, -5), ("3", 2, 300), (" 2.00 ", 2, 200), ("+1.25", 2, 125),
    (".5", 2, 50), ("7.", 2, 700), ("0", 2, 0), ("-0", 2, 0), ("150", 0, 150), ("1.234", 3, 1234),
    ("12345678901234567890.99", 2, 1234567890123456789099),  # exact, no float on the way
])
def test_parse_money(text, digits, amount):
    assert parse_money(text, digits) == amount


@pytest.mark.parametrize("text, message", [
    ("1.005", "3 decimals; amounts have at most 2"), ("1.500", "3 decimals"), ("", "not an amount"),
    (".", "not an amount"), ("-", "not an amount"), ("abc", "not an amount"), ("1,50", "not an amount"),
    ("$1.50", "not an amount"), ("1e3", "not an amount"), ("1_000", "not an amount"), ("--1", "not an amount"),
    ("١", "not an amount"),  # an Arabic-Indic digit: int() would take it
])
def test_parse_money_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_money(text)


def test_parse_money_zero_digits_rejects_decimals():
    with pytest.raises(ValueError, match="at most 0"):
        parse_money("1.5", 0)


# --- media names -----------------------------------------------------------------------

@pytest.mark.parametrize("name, size", [
    ("iso_a3_297x420mm", (29700, 42000)), ("na_letter_8.5x11in", (21590, 27940)),
    ("na_legal_8.5x14in", (21590, 35560)), ("iso_a5_148x210mm", (14800, 21000)),
    ("custom_foo_100x200mm", (10000, 20000)), ("na_number-10_4.125x9.5in", (10478, 24130)),
    ("a3", (29700, 42000)), ("A4", (21000, 29700)), ("letter", (21590, 27940)), ("legal", (21590, 35560)),
    ("tabloid", (27940, 43180)), ("ledger", (27940, 43180)), ("100x150mm", (10000, 15000)),
])
def test_media_size(name, size):
    assert media_size(name) == size


@pytest.mark.parametrize("name", ["a7", "iso_a4", "iso_a4_210x297", "iso_a4_210x297cm", "x_0x10mm", "",
                                  "na_letter_8,5x11in", "iso_a4_210×297mm"])
def test_media_size_rejects(name):
    with pytest.raises(ValueError):
        media_size(name)


# --- settings --------------------------------------------------------------------------

class _Queue(config._Section):
    cost: CostSettings = CostSettings()


class _Settings(config._Section):
    queues: dict[str, _Queue] = {}


def config_error(cost_table: dict) -> str:
    """The message config.py would print for queues.q.cost = cost_table."""
    with pytest.raises(ValidationError) as e:
        _Settings.model_validate({"queues": {"q": {"cost": cost_table}}})
    return config._format_errors(e.value, "site.toml")


@pytest.mark.parametrize("table, message", [
    ({"media": {"a7": {"gray": 1}}}, "site.toml: queues.q.cost.media.a7: media name 'a7' does not end in its size"),
    ({"media": {"a4": {}, "iso_a4_210x297mm": {}}},
     "site.toml: queues.q.cost.media.iso_a4_210x297mm: is the same size as 'a4' (within 1 mm)"),
    ({"media": {"a4": {}, "custom_x_297.5x210.5mm": {}}},
     'queues.q.cost.media."custom_x_297.5x210.5mm": is the same size'),
    ({"media": {"a4": {"colour": 3}}}, "site.toml: queues.q.cost.media.a4.colour: unknown key"),
    ({"media": {"a4": {"color": -1}}}, "queues.q.cost.media.a4.color: must be greater than or equal to 0 (got -1)"),
    ({"gray": 0.1}, "site.toml: queues.q.cost.gray: must be a whole number of minor units, e.g. 10 for 0.10 (got 0.1)"),
    ({"color": "40"}, "queues.q.cost.color: must be a whole number of minor units"),
    ({"color": True}, "queues.q.cost.color: must be a whole number of minor units"),
    ({"gray": -1}, "site.toml: queues.q.cost.gray: must be greater than or equal to 0 (got -1)"),
    ({"duplex_discount_percent": 150},
     "site.toml: queues.q.cost.duplex_discount_percent: must be less than or equal to 100 (got 150)"),
    ({"duplex_discount_percent": -1}, "duplex_discount_percent: must be greater than or equal to 0"),
    ({"minimum": 10, "maximum": 5},
     "site.toml: queues.q.cost.maximum: must not be less than minimum (10), or 0 for no maximum"),
    ({"undecided": "free"}, "site.toml: queues.q.cost.undecided: must be 'color' or 'gray' (got 'free')"),
    ({"per_page": 1.5}, "queues.q.cost.per_page: must be a whole number of minor units"),
    ({"color_price": 1}, "site.toml: queues.q.cost.color_price: unknown key"),
])
def test_settings_errors_name_the_key(table, message):
    assert message in config_error(table)


def test_settings_accept():
    s = CostSettings(minimum=10, maximum=0, per_page=-3, per_job=-20, duplex_discount_percent=12.5,
                     media={"a3": {"color": 80}, "na_letter_8.5x11in": {"gray": 9, "color": 30}})
    assert s.duplex_discount_percent == Decimal("12.5")
    assert CostSettings(minimum=10, maximum=10).maximum == 10
    # 0.1 is taken as written, not as the binary float nearest to it
    assert CostSettings(duplex_discount_percent=0.1).duplex_discount_percent == Decimal("0.1")
    with pytest.raises(ValidationError):
        s.gray = 3  # frozen


# --- prices ----------------------------------------------------------------------------

def test_top_level_prices():
    c = cost([kind(3, True), kind(12, False)], gray=10, color=40)
    assert (c.total, c.pages, c.color_pages, c.gray_pages, c.sheets, c.duplex_sheets) == (240, 15, 3, 12, 15, 0)


def test_worked_example_from_the_brief():
    """The brief's example (which said 2.68: 1.20 + 1.20 - 0.12 is 2.28)."""
    c = cost([kind(3, True), kind(12, False, LONG)], gray=10, color=40, duplex_discount=2)
    assert c.total == 228
    assert (c.sheets, c.duplex_sheets) == (9, 6)
    assert c.describe() == "3 colour pages × 0.40 + 12 gray pages × 0.10 − 6 duplex sheets × 0.02 = 2.28"
    assert c.lines == ("3 colour pages × 0.40 = 1.20", "12 gray pages × 0.10 = 1.20",
                       "6 duplex sheets × -0.02 = -0.12", "total 2.28")


def test_describe_with_another_money_format():
    c = cost([kind(2, True)], color=150)
    assert c.describe(functools.partial(format_money, digits=0, symbol="¥")) == "2 colour pages × ¥150 = ¥300"


def test_no_pages_costs_nothing():
    for kinds in ([], [kind(0, True)]):
        c = cost(kinds, color=40, per_job=25, minimum=50)
        assert (c.total, c.pages, c.terms) == (0, 0, ())
        assert c.describe() == "no pages = 0.00"
    assert compute([], CostSettings(minimum=50)).total == 0


@pytest.mark.parametrize("media", [A3, A3[::-1], [29800, 42000], [29600, 41900], [29700 + 100, 42000 - 100],
                                   [42100, 29600]])
def test_media_matches_either_orientation_within_1mm(media):
    c = cost([kind(2, True, media=media), kind(1, False, media=media)], gray=10, color=40,
             media={"a3": {"gray": 20, "color": 80}})
    assert c.total == 2 * 80 + 20
    assert c.describe() == "2 colour pages on a3 × 0.80 + 1 gray pages on a3 × 0.20 = 1.80"


@pytest.mark.parametrize("media", [[29801, 42000], [29700, 41899], [42000, 29599], [21000, 29700], None])
def test_media_outside_tolerance_or_absent_uses_top_level(media):
    c = cost([kind(2, True, media=media)], gray=10, color=40, media={"a3": {"gray": 20, "color": 80}})
    assert c.total == 80


def test_media_pwg_and_custom_names_and_letter_from_points():
    # a PDF's letter page: 612 x 792 pt -> 21590 x 27940 exactly; 595 x 842 pt (A4) -> 20990 x 29704
    s = dict(gray=10, media={"na_letter_8.5x11in": {"gray": 11}, "iso_a4_210x297mm": {"gray": 12},
                             "custom_card_100x150mm": {"gray": 13}})
    assert cost([kind(1, media=LETTER)], **s).total == 11
    assert cost([kind(1, media=[20990, 29704])], **s).total == 12
    assert cost([kind(1, media=[15000, 10000])], **s).total == 13
    assert cost([kind(1, media=[15000, 10200])], **s).total == 10


def test_media_nearest_entry_wins():
    # two entries 1.5 mm apart: a page between them takes the nearer one, a tie the first written
    s = dict(gray=1, media={"custom_a_100x100mm": {"gray": 5}, "custom_b_101.5x100mm": {"gray": 7}})
    assert cost([kind(1, media=[10010, 10000])], **s).total == 5
    assert cost([kind(1, media=[10140, 10000])], **s).total == 7
    assert cost([kind(1, media=[10075, 10000])], **s).total == 5


def test_media_entry_price_left_out_is_the_top_level_one():
    s = dict(gray=10, color=40, media={"legal": {"color": 60}})
    legal = [21590, 35560]
    assert cost([kind(1, True, media=legal)], **s).total == 60
    assert cost([kind(1, False, media=legal)], **s).total == 10


def test_alias_and_pwg_name_are_the_same_media():
    for name in ("tabloid", "ledger", "na_ledger_11x17in"):
        assert cost([kind(1, True, media=[43180, 27940])], color=40, media={name: {"color": 99}}).total == 99


# --- duplex ----------------------------------------------------------------------------

def test_duplex_sheets_are_counted_per_kind_and_per_copy():
    # 5 two-sided pages printed twice by the document: each copy is 3 sheets, 2 of them duplex
    c = cost([kind(5, False, SHORT, copies=2)], gray=10, duplex_discount=3)
    assert (c.pages, c.sheets, c.duplex_sheets) == (10, 6, 4)
    assert c.total == 100 - 4 * 3


def test_duplex_discount_percent_is_per_page_on_duplex_sheets():
    # 3 two-sided colour pages: 2 share a sheet (10% off 0.40 = 0.36), the odd one is alone
    c = cost([kind(3, True, LONG)], color=40, duplex_discount_percent=10)
    assert c.total == 36 * 2 + 40
    assert c.describe() == "1 colour pages × 0.40 + 2 colour pages two-sided × 0.36 = 1.12"


def test_duplex_discount_percent_rounds_the_discount_half_up():
    # 10% of 0.05 is half a cent: the discount rounds up to 0.01, the page costs 0.04
    assert cost([kind(2, False, LONG)], gray=5, duplex_discount_percent=10).total == 8
    # 12.5% of 0.10 is 1.25 cents -> 1; of 0.12 is 1.5 -> 2
    assert cost([kind(2, False, LONG)], gray=10, duplex_discount_percent=12.5).total == 18
    assert cost([kind(2, False, LONG)], gray=12, duplex_discount_percent=12.5).total == 20
    # 0.1% of 5.00 is 0.5 cents exactly (as a float it would not be)
    assert cost([kind(2, False, LONG)], gray=500, duplex_discount_percent=0.1).total == 998
    assert cost([kind(2, False, LONG)], gray=10, duplex_discount_percent=100).total == 0


def test_both_duplex_discounts():
    c = cost([kind(4, True, LONG), kind(4, False, LONG)], gray=10, color=40,
             duplex_discount=2, duplex_discount_percent=25)
    assert c.duplex_sheets == 4
    # 25% of 0.10 is 2.5 cents: the discount rounds up to 0.03
    assert c.total == 4 * 30 + 4 * 7 - 4 * 2
    assert c.describe() == ("4 colour pages two-sided × 0.30 + 4 gray pages two-sided × 0.07 "
                            "− 4 duplex sheets × 0.02 = 1.40")


def test_sides_override():
    kinds = [kind(4, True, ONE), kind(3, False, LONG)]
    s = dict(gray=10, color=40, duplex_discount=5)
    plain = cost(kinds, **s)
    assert (plain.sheets, plain.duplex_sheets, plain.total) == (6, 1, 160 + 30 - 5)
    forced = cost(kinds, sides=SHORT, **s)  # a forced-duplex filter
    assert (forced.sheets, forced.duplex_sheets, forced.total) == (4, 3, 160 + 30 - 15)
    simplex = cost(kinds, sides=ONE, **s)
    assert (simplex.sheets, simplex.duplex_sheets, simplex.total) == (7, 0, 190)
    with pytest.raises(ValueError, match="sides must be one of"):
        cost(kinds, sides="two-sided", **s)


# --- copies ----------------------------------------------------------------------------

def test_ipp_copies_multiply_everything():
    kinds = [kind(3, True, LONG, A4, copies=2), kind(1, None)]
    s = dict(gray=10, color=40, duplex_discount=2, per_page=1, media={"a4": {"color": 30}})
    one, three = cost(kinds, **s), cost(kinds, copies=3, **s)
    assert (one.pages, one.sheets, one.duplex_sheets) == (7, 5, 2)
    assert (three.pages, three.color_pages, three.sheets, three.duplex_sheets) == (21, 21, 15, 6)
    assert three.total == 3 * one.total == 3 * (6 * 30 + 40 - 2 * 2 + 7)


def test_copies_must_be_positive_and_document_copies_never_zero():
    with pytest.raises(ValueError, match="copies must be at least 1"):
        cost([kind(1)], copies=0)
    assert cost([kind(2, True, copies=0)], color=40).total == 80


# --- adjustments, minimum and maximum --------------------------------------------------

def test_per_page_and_per_job():
    c = cost([kind(10, False)], gray=10, per_page=2, per_job=50)
    assert c.total == 100 + 20 + 50
    assert c.describe() == "10 gray pages × 0.10 + 10 pages × 0.02 + per job 0.50 = 1.70"


def test_negative_adjustments_never_go_below_zero():
    c = cost([kind(3, True)], color=40, per_page=-50)
    assert (c.total, c.subtotal, c.note) == (0, -30, "not below 0")
    assert c.describe() == "3 colour pages × 0.40 − 3 pages × 0.50 = 0.00 (not below 0)"
    assert cost([kind(3, True)], color=40, per_job=-100).total == 20
    assert cost([kind(3, True)], color=40, per_job=-500).total == 0
    assert cost([kind(4, False, LONG)], gray=1, duplex_discount=10).total == 0


def test_minimum_and_maximum():
    s = dict(gray=10, minimum=50, maximum=200)
    assert (cost([kind(2)], **s).total, cost([kind(2)], **s).note) == (50, "minimum")
    assert cost([kind(10)], **s).total == 100
    assert (cost([kind(30)], **s).total, cost([kind(30)], **s).note) == (200, "maximum")
    assert cost([kind(3)], gray=10, per_page=-20, minimum=5).total == 5  # clamped to 0, then the minimum
    assert cost([kind(1000)], gray=10, maximum=0).total == 10000  # 0: no maximum
    assert cost([kind(3)], gray=10, minimum=30).note == ""


# --- colour: undecided pages and gray printing -----------------------------------------

def test_undecided_pages_are_colour_by_default():
    c = cost([kind(2, None), kind(1, True)], gray=10, color=40)
    assert (c.total, c.color_pages, c.gray_pages, c.undecided_pages) == (120, 3, 0, 2)
    assert "2 undecided pages as colour × 0.40" in c.describe()


def test_undecided_pages_as_gray():
    c = cost([kind(2, None), kind(1, True)], gray=10, color=40, undecided="gray")
    assert (c.total, c.color_pages, c.gray_pages, c.undecided_pages) == (60, 1, 2, 2)
    assert "2 undecided pages as gray × 0.10" in c.describe()


def test_gray_printing_prices_every_page_gray():
    kinds = [kind(2, None), kind(3, True, media=A3), kind(1, False)]
    s = dict(gray=10, color=40, media={"a3": {"gray": 20, "color": 80}})
    c = cost(kinds, mono=True, **s)
    assert (c.total, c.color_pages, c.gray_pages) == (2 * 10 + 3 * 20 + 10, 0, 6)
    assert "undecided" not in c.describe() and "colour" not in c.describe()
    assert compute([kinds], CostSettings(**s)).total == 2 * 40 + 3 * 80 + 10


def test_documents_add_up():
    doc1, doc2 = [kind(1, True, LONG)], [kind(1, True, LONG)]
    c = compute([doc1, doc2], CostSettings(color=40, duplex_discount=5))
    assert (c.pages, c.sheets, c.duplex_sheets, c.total) == (2, 2, 0, 80)  # each document its own sheet


@pytest.mark.parametrize("bad", [[1, True, ONE, None], [-1, True, ONE, None, 1], [1, True, "duplex", None, 1],
                                 ["1", True, ONE, None, 1], [1, True, ONE, None, None], None])
def test_malformed_kinds(bad):
    with pytest.raises(ValueError):
        compute([[bad]], CostSettings())


# --- job_cost on a spool job -----------------------------------------------------------

def make_job(*analyses, attrs=()) -> Job:
    job = Job(id=7, queue="q", uuid="urn:uuid:x", user="alice",
              attributes=codec.encode_attributes(list(attrs)) if attrs else b"")
    for i, a in enumerate(analyses, 1):
        job.documents.append(Document(i, f"{i}.pdf", "application/pdf", 100, analysis=a))
    return job


def analysed(*kinds):
    return {"format": "application/pdf", "pages": sum(k[0] for k in kinds), "kinds": [list(k) for k in kinds]}


PRICES = CostSettings(gray=10, color=40, duplex_discount=2)


def test_job_cost_reads_kinds_of_every_document():
    job = make_job(analysed(kind(2, True)), analysed(kind(3, False, LONG)))
    c = job_cost(job, PRICES)
    assert c is not None and (c.total, c.pages, c.duplex_sheets) == (80 + 30 - 2, 5, 1)


def test_job_cost_takes_ipp_copies_sides_and_colour_mode():
    a = Attribute.of
    docs = (analysed(kind(2, True), kind(1, None)),)
    assert job_cost(make_job(*docs, attrs=[a("copies", Tag.INTEGER, 3)]), PRICES).total == 3 * 120
    c = job_cost(make_job(*docs, attrs=[a("sides", Tag.KEYWORD, LONG)]), PRICES)
    assert (c.total, c.duplex_sheets) == (120 - 2, 1)
    for mode in ("monochrome", "process-monochrome", "bi-level"):
        assert job_cost(make_job(*docs, attrs=[a("print-color-mode", Tag.KEYWORD, mode)]), PRICES).total == 30
    assert job_cost(make_job(*docs, attrs=[a("print-color-mode", Tag.KEYWORD, "color")]), PRICES).total == 120
    both = make_job(*docs, attrs=[a("job-name", Tag.NAME, "x"), a("copies", Tag.INTEGER, 2),
                                  a("print-color-mode", Tag.KEYWORD, "monochrome"), a("sides", Tag.KEYWORD, SHORT)])
    assert job_cost(both, PRICES).total == 2 * (30 - 2)


def test_job_cost_overrides_win_over_attributes():
    a = Attribute.of
    job = make_job(analysed(kind(4, True)), attrs=[a("sides", Tag.KEYWORD, LONG), a("copies", Tag.INTEGER, 2)])
    assert job_cost(job, PRICES).total == 2 * (160 - 4)
    assert job_cost(job, PRICES, sides=ONE).total == 2 * 160
    assert job_cost(job, PRICES, gray=True).total == 2 * (40 - 4)


def test_job_cost_ignores_odd_attribute_values():
    a = Attribute.of
    job = make_job(analysed(kind(1, True)), attrs=[a("copies", Tag.INTEGER, 0), a("sides", Tag.KEYWORD, "sideways")])
    assert job_cost(job, PRICES).total == 40


def test_job_cost_is_none_until_every_document_is_counted():
    assert job_cost(make_job(analysed(kind(1)), None), PRICES) is None
    assert job_cost(make_job(analysed(kind(1)), {"error": "damaged", "kind": "DamagedDocument"}), PRICES) is None
    bad = make_job(analysed(kind(1)))
    bad.attributes = b"\x21\x00"  # truncated: the copies cannot be known
    assert job_cost(bad, PRICES) is None
    assert job_cost(make_job(), PRICES) == Cost(0)


def test_job_cost_after_a_record_round_trip():
    a = Attribute.of
    job = make_job(analysed(kind(2, True, LONG, A4)), attrs=[a("copies", Tag.INTEGER, 2)])
    again = Job.from_record(job.to_record())
    assert job_cost(again, PRICES) == job_cost(job, PRICES)
    assert job_cost(again, PRICES).total == 2 * (80 - 2)
