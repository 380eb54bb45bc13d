"""Model prices and the cost of one model call. Pure: the table is data (``prices.toml`` in the package,
plus a user's ``--prices`` file), the rules are here.

Cost of a call, when nothing reported one (a reported cost always wins):

    (input − cached − cache_write) × input + cached × cached_input + cache_write × cache_write + output × output

Token counts are trajscope's normalised ones: input includes cached reads and cache writes, output
includes reasoning, so every token is priced exactly once.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

CostSource = Literal["reported", "computed", "unpriced"]

# Prefixes routers and clouds put before a model name: `openai/gpt-4o`, `models/gemini-2.5-flash`,
# Bedrock's `us.anthropic.claude-…`, `meta.llama…`.
_PATH_PREFIX = re.compile(r"^.*/")
_DOTTED_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global)\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek)\.")
# Version suffixes that do not change the price: dated snapshots and Bedrock/Vertex revisions.
_SUFFIXES = (re.compile(r"-v\d+(?::\d+)?$"), re.compile(r"@\d{8}$"), re.compile(r"-\d{8}$"),
             re.compile(r"-\d{4}-\d{2}-\d{2}$"), re.compile(r"-latest$"), re.compile(r":\d+$"))


@dataclass(frozen=True)
class Price:
    name: str
    provider: str
    input: float
    output: float
    effective_from: dt.date
    source: str
    cached_input: float | None = None
    cache_write: float | None = None
    aliases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["effective_from"] = self.effective_from.isoformat()
        out["aliases"] = list(self.aliases)
        return out


class PriceError(ValueError):
    """A price file that cannot be used; the message names the file and the entry."""


def _parse(doc: dict[str, Any], origin: str) -> list[Price]:
    entries = doc.get("model")
    if not isinstance(entries, list):
        raise PriceError(f"{origin}: expected [[model]] entries")
    prices = []
    for i, e in enumerate(entries):
        where = f"{origin}: [[model]] #{i + 1} ({e.get('name', '?')})"
        try:
            when = e["effective_from"]
            when = when if isinstance(when, dt.date) else dt.date.fromisoformat(str(when))
            prices.append(Price(
                name=str(e["name"]).lower(), provider=str(e.get("provider", "")), input=float(e["input"]),
                output=float(e["output"]), effective_from=when, source=str(e.get("source", origin)),
                cached_input=None if e.get("cached_input") is None else float(e["cached_input"]),
                cache_write=None if e.get("cache_write") is None else float(e["cache_write"]),
                aliases=tuple(str(a).lower() for a in e.get("aliases", ())),
            ))
        except KeyError as exc:
            raise PriceError(f"{where}: missing {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise PriceError(f"{where}: {exc}") from None
        if min(prices[-1].input, prices[-1].output) < 0:
            raise PriceError(f"{where}: prices cannot be negative")
    return prices


def _day_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9


class PriceTable:
    """Prices by model name, each with its history (``effective_from`` dates)."""

    def __init__(self, prices: list[Price]) -> None:
        by_name: dict[str, dict[dt.date, Price]] = {}
        for p in prices:  # later entries (the user's file) replace earlier ones for the same name and date
            by_name.setdefault(p.name, {})[p.effective_from] = p
        self._history: dict[str, tuple[list[int], list[Price]]] = {}
        self._alias: dict[str, str] = {}
        for name, dated in by_name.items():
            ordered = [dated[d] for d in sorted(dated)]
            self._history[name] = ([_day_ns(p.effective_from) for p in ordered], ordered)
            for p in ordered:
                for alias in p.aliases:
                    self._alias.setdefault(alias, name)
        self._match_cache: dict[str, str | None] = {}

    @classmethod
    def load(cls, extra: str | Path | None = None) -> PriceTable:
        """The built-in table, with the entries of ``extra`` (TOML) added or overriding."""
        builtin = resources.files("trajscope.analysis").joinpath("prices.toml").read_text()
        prices = _parse(tomllib.loads(builtin), "built-in prices.toml")
        if extra is not None:
            path = Path(extra)
            try:
                doc = tomllib.loads(path.read_text())
            except OSError as exc:
                raise PriceError(f"cannot read {path}: {exc.strerror}") from None
            except tomllib.TOMLDecodeError as exc:
                raise PriceError(f"{path}: not valid TOML: {exc}") from None
            prices += _parse(doc, str(path))
        return cls(prices)

    def entries(self) -> list[Price]:
        return [p for _, ps in self._history.values() for p in ps]

    def match(self, model: str | None) -> str | None:
        """The table's name for ``model``: exact, alias, without provider prefixes, without a dated or
        versioned suffix (``gpt-4o-2024-08-06`` → ``gpt-4o``)."""
        if not model:
            return None
        if model in self._match_cache:
            return self._match_cache[model]
        found = None
        name = model.strip().lower()
        candidates = [name]
        bare = _DOTTED_PREFIX.sub("", _PATH_PREFIX.sub("", name))
        candidates.append(bare)
        stripped = bare
        for _ in range(3):  # `…-20241022-v2:0` has two suffixes
            for suffix in _SUFFIXES:
                stripped = suffix.sub("", stripped)
            candidates.append(stripped)
        for candidate in candidates:
            key = candidate if candidate in self._history else self._alias.get(candidate)
            if key:
                found = key
                break
        self._match_cache[model] = found
        return found

    def price_at(self, model: str | None, start_unix_nano: int) -> Price | None:
        """The price in force for ``model`` when a span started; None if unknown or not yet priced then."""
        key = self.match(model)
        if key is None:
            return None
        starts, prices = self._history[key]
        i = bisect.bisect_right(starts, start_unix_nano) - 1
        return prices[i] if i >= 0 else None


def call_cost(price: Price, input_tokens: int | None, output_tokens: int | None, cached: int | None,
              cache_write: int | None) -> float:
    cached, cache_write = cached or 0, cache_write or 0
    uncached = max((input_tokens or 0) - cached - cache_write, 0)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    write_rate = price.input if price.cache_write is None else price.cache_write
    return (uncached * price.input + cached * cached_rate + cache_write * write_rate
            + (output_tokens or 0) * price.output) / 1e6


def span_cost(table: PriceTable, reported: float | None, model: str | None, start_unix_nano: int,
              input_tokens: int | None, output_tokens: int | None, cached: int | None,
              cache_write: int | None) -> tuple[float | None, CostSource | None]:
    """(cost_usd, cost_source) of one span. Spans without tokens or a reported cost have no cost at all."""
    if reported is not None:
        return reported, "reported"
    if input_tokens is None and output_tokens is None:
        return None, None
    price = table.price_at(model, start_unix_nano)
    if price is None:
        return None, "unpriced"  # unknown is not free: never 0
    return call_cost(price, input_tokens, output_tokens, cached, cache_write), "computed"
