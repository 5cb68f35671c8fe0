"""Property tests for the cost model (spoolproxy.ledger.cost), with a model check
against a page-by-page recomputation written independently of the module."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from spoolproxy import pdl
from spoolproxy.ledger.cost import CostSettings, compute, format_money, media_size, parse_money
from spoolproxy.spool.analysis import summary

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

SIDES = ("one-sided", "two-sided-long-edge", "two-sided-short-edge")
NAMES = ("a4", "a3", "letter", "na_legal_8.5x14in", "custom_card_100x150mm")  # sizes > 1 mm apart
SIZES = [media_size(n) for n in NAMES] + [(10050, 14900), (30000, 40000)]

price = st.integers(0, 500)


@st.composite
def media(draw):
    """None, or a size near a priced one (either orientation, up to 1.5 mm off)."""
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    w, h = draw(st.sampled_from(SIZES))
    w, h = w + draw(st.integers(-150, 150)), h + draw(st.integers(-150, 150))
    return [h, w] if draw(st.booleans()) else [w, h]


kinds_ = st.lists(st.tuples(st.integers(0, 7), st.sampled_from([True, False, None]), st.sampled_from(SIDES),
                            media(), st.integers(0, 3)).map(list), max_size=5)
documents = st.lists(kinds_, max_size=3)


@st.composite
def cost_settings(draw, *, fees=True, color_dearer=False):
    gray = draw(price)
    color = gray + draw(price) if color_dearer else draw(price)
    table = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))):
        g, c = draw(st.none() | price), draw(st.none() | price)
        if color_dearer:
            assume((color if c is None else c) >= (gray if g is None else g))
        table[name] = {k: v for k, v in (("gray", g), ("color", c)) if v is not None}
    minimum = draw(st.integers(0, 2000)) if fees else 0
    maximum = draw(st.just(0) | st.integers(minimum, 5000)) if fees else 0
    return CostSettings(
        gray=gray, color=color, media=table, duplex_discount=draw(st.integers(0, 30)),
        duplex_discount_percent=draw(st.decimals(0, 100, places=2)),
        per_page=draw(st.integers(-60, 60)), per_job=draw(st.integers(-300, 300)) if fees else 0,
        minimum=minimum, maximum=maximum, undecided=draw(st.sampled_from(["color", "gray"])))


jobs = st.fixed_dictionaries({"copies": st.integers(1, 4), "sides": st.none() | st.sampled_from(SIDES),
                              "gray": st.booleans()})


# --- an independent recomputation ------------------------------------------------------

def page_price(s: CostSettings, color, size, gray: bool) -> int:
    colour = not gray and (s.undecided == "color" if color is None else color)
    entry = None
    if size is not None:
        near = []
        for i, (name, p) in enumerate(s.media.items()):
            w, h = media_size(name)
            for ew, eh in ((w, h), (h, w)):
                off = max(abs(size[0] - ew), abs(size[1] - eh))
                if off <= 100:
                    near.append((off, i, p))
        entry = min(near, key=lambda t: t[:2])[2] if near else None
    own = None if entry is None else (entry.color if colour else entry.gray)
    return own if own is not None else (s.color if colour else s.gray)


def model(docs, s: CostSettings, copies: int, sides, gray: bool) -> dict:
    """Lays every impression on a sheet, one at a time, and prices it."""
    total = pages = color_pages = sheets = duplex = 0
    for doc in docs:
        for n, color, kind_sides, size, doc_copies in doc:
            two = (sides or kind_sides) != "one-sided"
            for _ in range(max(doc_copies, 1) * copies):
                on_sheet = [[]]
                for page in range(n):
                    if len(on_sheet[-1]) == (2 if two else 1):
                        on_sheet.append([])
                    on_sheet[-1].append(page)
                for sheet in on_sheet:
                    if not sheet:
                        continue
                    sheets += 1
                    duplex += len(sheet) == 2
                    for _page in sheet:
                        p = page_price(s, color, size, gray)
                        if len(sheet) == 2:
                            off = Decimal(p) * s.duplex_discount_percent / 100
                            p -= int(off.quantize(Decimal(1), rounding=ROUND_HALF_UP))
                        total += p
                        pages += 1
                        color_pages += not gray and (s.undecided == "color" if color is None else bool(color))
    if not pages:
        return {"total": 0, "pages": 0, "sheets": 0, "duplex_sheets": 0, "color_pages": 0}
    total += pages * s.per_page - duplex * s.duplex_discount + s.per_job
    total = max(total, 0, s.minimum)
    if s.maximum:
        total = min(total, s.maximum)
    return {"total": total, "pages": pages, "sheets": sheets, "duplex_sheets": duplex, "color_pages": color_pages}


# --- properties ------------------------------------------------------------------------

@SETTINGS
@given(documents, cost_settings(), jobs)
@example([[[3, True, "one-sided", None, 1], [12, False, "two-sided-long-edge", None, 1]]],
         CostSettings(gray=10, color=40, duplex_discount=2), {"copies": 1, "sides": None, "gray": False})
@example([[[2, False, "two-sided-long-edge", [21000, 29700], 1]]],
         CostSettings(gray=5, duplex_discount_percent=Decimal("10"), media={"a4": {"gray": 5}}),
         {"copies": 1, "sides": None, "gray": False})
def test_agrees_with_a_page_by_page_recomputation(docs, s, job):
    c = compute(docs, s, **job)
    want = model(docs, s, **job)
    assert {k: getattr(c, k) for k in want} == want
    assert c.gray_pages == c.pages - c.color_pages


@SETTINGS
@given(documents, cost_settings(), jobs)
def test_total_is_a_whole_amount_within_the_bounds(docs, s, job):
    c = compute(docs, s, **job)
    assert type(c.total) is int and c.total >= 0
    if c.pages == 0:
        assert c.total == 0
    else:
        assert c.total >= s.minimum
        if s.maximum:
            assert c.total <= s.maximum
    # the bill reads back: every line is count x unit, and the one-line text ends in the total
    assert all(t.count is None or t.amount == t.count * t.unit for t in c.terms)
    assert c.describe().split(" = ")[-1].split(" (")[0] == format_money(c.total)
    if c.note == "":
        assert c.total == c.subtotal


@SETTINGS
@given(documents, cost_settings(color_dearer=True), jobs)
def test_printing_gray_never_costs_more(docs, s, job):
    job["gray"] = False
    assert compute(docs, s, **job | {"gray": True}).total <= compute(docs, s, **job).total


@SETTINGS
@given(documents, cost_settings(fees=False), st.none() | st.sampled_from(SIDES), st.booleans(), st.integers(1, 50))
def test_linear_in_ipp_copies(docs, s, sides, gray, copies):
    one = compute(docs, s, sides=sides, gray=gray)
    many = compute(docs, s, copies=copies, sides=sides, gray=gray)
    assert many.total == copies * one.total
    assert (many.pages, many.sheets, many.duplex_sheets) == (copies * one.pages, copies * one.sheets,
                                                             copies * one.duplex_sheets)


@SETTINGS
@given(documents, cost_settings(), jobs)
def test_forced_sides(docs, s, job):
    simplex = compute(docs, s, **job | {"sides": "one-sided"})
    duplex = compute(docs, s, **job | {"sides": "two-sided-long-edge"})
    assert simplex.duplex_sheets == 0 and simplex.sheets == simplex.pages
    assert duplex.sheets == duplex.pages - duplex.duplex_sheets
    assert duplex.sheets <= simplex.sheets


runs = st.lists(st.builds(pdl.PageRun, count=st.integers(1, 6), color=st.sampled_from([True, False, None]),
                          sides=st.sampled_from(SIDES), media=st.none() | st.sampled_from(SIZES),
                          copies=st.integers(1, 3)), max_size=8)


@SETTINGS
@given(runs)
def test_counts_agree_with_the_analysis_summary(rs):
    """The kinds of summary() lose the page order: pages and colour impressions are
    the analysis's own, sheets never more than its run-by-run count, and equal when
    no two runs share a kind."""
    a = pdl.Analysis("application/pdf", tuple(rs))
    s = summary(a)
    c = compute([s["kinds"]], CostSettings(undecided="gray"))
    assert (c.pages, c.color_pages, c.undecided_pages) == (a.impressions, a.color_impressions,
                                                           sum(r.count * r.copies for r in rs if r.color is None))
    assert c.sheets <= a.sheets
    if len({(r.color, r.sides, r.media, r.copies) for r in rs}) == len(rs):
        assert c.sheets == a.sheets


@SETTINGS
@given(st.integers(-10**12, 10**12), st.integers(0, 4))
def test_money_text_round_trips(amount, digits):
    text = format_money(amount, digits)
    assert parse_money(text, digits) == amount
    assert parse_money(" " + text + " ", digits) == amount
    if digits:
        assert len(text.split(".")[1]) == digits
