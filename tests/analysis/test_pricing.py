"""Cost per span, hand-computed for each pricing case (prices per million tokens from prices.toml)."""

import datetime as dt

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.analysis.pricing import PriceError, PriceTable, span_cost
from trajscope.collector import costing
from trajscope.collector.otlp_decode import decode_request

TABLE = PriceTable.load()
NOV_2026 = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()) * 10**9


def _at(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()) * 10**9


def cost(model, inp=None, out=None, cached=None, write=None, reported=None, when=NOV_2026, table=TABLE):
    return span_cost(table, reported, model, when, inp, out, cached, write)


def test_cached_input_is_priced_as_cached_and_never_twice():
    # gpt-4o: input 2.50, cached 1.25, output 10.00. 1,000 input of which 200 cached; 500 output.
    assert cost("gpt-4o", 1000, 500, cached=200) == (pytest.approx((800 * 2.50 + 200 * 1.25 + 500 * 10.00) / 1e6),
                                                     "computed")


def test_cache_writes_and_reads_anthropic():
    # claude-sonnet-4-5: 3.00 input, 0.30 cache read, 3.75 cache write, 15.00 output.
    # 10,000 input = 2,000 plain + 6,000 read + 2,000 written; 1,000 output.
    got, source = cost("claude-sonnet-4-5", 10_000, 1_000, cached=6_000, write=2_000)
    assert source == "computed"
    assert got == pytest.approx((2000 * 3.00 + 6000 * 0.30 + 2000 * 3.75 + 1000 * 15.00) / 1e6)  # 0.0303


def test_reasoning_tokens_count_once_as_output():
    # o4-mini: 1.10 input, 4.40 output. The SDK reports 200 output + 800 reasoning separately (reasoning
    # larger than the total, Anthropic-style): normalisation makes output 1,000, priced once.
    span = make_span("chat o4-mini", start=NOV_2026, end=NOV_2026 + 1, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "o4-mini", "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 200, "gen_ai.usage.reasoning_tokens": 800})
    costing.configure(None)
    row = decode_request(make_request([span]).SerializeToString()).table.to_pylist()[0]
    assert (row["output_tokens"], row["reasoning_tokens"]) == (1000, 800)
    assert row["cost_usd"] == pytest.approx((100 * 1.10 + 1000 * 4.40) / 1e6)
    assert row["cost_source"] == "computed"


def test_a_reported_cost_wins():
    assert cost("gpt-4o", 1000, 500, reported=0.5) == (0.5, "reported")
    assert cost("unknown-model", 1000, 500, reported=0.0) == (0.0, "reported")


@pytest.mark.parametrize("name", [
    "gpt-4o-2024-08-06", "openai/gpt-4o", "azure/gpt-4o", "GPT-4o",
])
def test_snapshots_and_prefixes_match_the_base_model(name):
    assert TABLE.match(name) == "gpt-4o"
    assert cost(name, 1000, 0) == cost("gpt-4o", 1000, 0)


@pytest.mark.parametrize(("name", "expected"), [
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
    ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b-instruct"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
])
def test_provider_and_router_names(name, expected):
    assert TABLE.match(name) == expected


def test_an_unknown_model_is_unpriced_never_free():
    assert cost("acme-llm-9", 1000, 500) == (None, "unpriced")
    assert cost(None, 1000, 500) == (None, "unpriced")
    assert TABLE.match("gpt-4o-audio-preview") is None  # no guessing by prefix: a different price


def test_no_tokens_and_no_cost_means_no_cost_at_all():
    assert cost("gpt-4o") == (None, None)


def test_effective_from_dates_are_honoured():
    # o3 cost 10/40 from launch (2025-04-16) and 2/8 from 2025-06-10; before launch it had no price.
    assert cost("o3", 1000, 1000, when=_at("2025-05-01"))[0] == pytest.approx((1000 * 10 + 1000 * 40) / 1e6)
    assert cost("o3", 1000, 1000, when=_at("2025-06-10"))[0] == pytest.approx((1000 * 2 + 1000 * 8) / 1e6)
    assert cost("o3", 1000, 1000, when=_at("2025-04-15")) == (None, "unpriced")


def test_a_user_file_adds_and_overrides(tmp_path):
    extra = tmp_path / "prices.toml"
    extra.write_text('''
[[model]]
name = "acme-llm-9"
provider = "acme"
input = 1.0
output = 2.0
effective_from = "2026-01-01"
source = "our contract"

[[model]]
name = "gpt-4o"
provider = "openai"
input = 1.0
cached_input = 0.5
output = 4.0
effective_from = "2026-06-01"
source = "negotiated"
''')
    table = PriceTable.load(extra)
    assert cost("acme-llm-9", 1000, 1000, table=table)[0] == pytest.approx((1000 * 1.0 + 1000 * 2.0) / 1e6)
    # The override applies from its date; before it the built-in price still does.
    assert cost("gpt-4o", 1000, 0, table=table)[0] == pytest.approx(1000 * 1.0 / 1e6)
    assert cost("gpt-4o", 1000, 0, when=_at("2026-01-01"), table=table)[0] == pytest.approx(1000 * 2.5 / 1e6)


@pytest.mark.parametrize(("text", "message"), [
    ("[[model]]\nname = 'x'\ninput = 1\neffective_from = '2025-01-01'\n", "missing 'output'"),
    ("[[model]]\nname = 'x'\ninput = 1\noutput = 1\neffective_from = 'soon'\n", "soon"),
    ("[[model]]\nname = 'x'\ninput = -1\noutput = 1\neffective_from = '2025-01-01'\n", "negative"),
    ("model = 3", "expected [[model]]"),
    ("[[model]\n", "not valid TOML"),
])
def test_bad_price_files_say_what_is_wrong(tmp_path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(PriceError, match=r"bad\.toml") as err:
        PriceTable.load(bad)
    assert message in str(err.value)


def test_every_built_in_entry_has_a_source_and_a_date():
    entries = TABLE.entries()
    assert len({p.name for p in entries}) >= 30
    assert {p.provider for p in entries} >= {"openai", "anthropic", "google", "mistral", "meta"}
    assert all(p.source.startswith("http") and p.effective_from.year >= 2024 for p in entries)
