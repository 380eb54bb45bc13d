"""Redaction before storage: rules that drop attributes by key and mask values by pattern, applied to the decoded
spans before they reach the staging log or the store (``trajscope serve --redact FILE``).

Rules (TOML; ``--redact default`` is the built-in set alone):

    use_defaults = true          # the built-in detectors below, as rules of the same names

    [[rule]]
    name = "no-prompts"
    drop = ["gen_ai.input.messages", "gen_ai.output.messages", "llm.input_messages.*"]   # key globs
    projects = ["support"]       # optional: only these projects' spans

    [[rule]]
    name = "order-numbers"
    pattern = "ORD-[0-9]{6}"     # a regex; matches are masked

Built-in detectors: ``email``, ``card`` (13–19 digits passing the Luhn check), ``secret`` (``sk-…``, ``AKIA…``,
``ghp_…``, ``xox?-…`` style keys), ``phone`` (international or grouped numbers). A masked value keeps its
length and the class of each character — letters become ``x``, digits ``0``, the rest stays — so formats and
sizes survive for debugging, the value does not.

What is read: every string inside the attributes, events, links and resource and scope attributes (keys
included for drops), the span name, status message and the normalised string columns; for OTLP log records
the body, attributes, event name and resource attributes (``LOGS``). A row changed by a rule carries
``trajscope.redacted`` (the rule names) among its attributes. Rows are found cheaply first: only those whose
text a rule's prefilter finds are parsed.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from trajscope.analysis import retrieval
from trajscope.storage.schema import RETRIEVAL

REDACTED_KEY = "trajscope.redacted"


class RedactionError(ValueError):
    """The rules file cannot be used; the message names it and what is wrong."""


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", match.group(0))
    return 13 <= len(digits) <= 19 and _luhn(digits)


# What finds a detector's candidates fast in raw text (a superset of its matches): literals, each one pass that
# Arrow's regular expressions jump through with memchr, or a rough regex (those read every byte).
LITERALS: dict[str, tuple[str, ...]] = {
    "email": ("@",),
    "secret": ("sk-", "AKIA", "ghp_", "xox"),
}
ROUGH: dict[str, str] = {
    # Grouped, or a run of 13+ digits not written as a JSON number (those follow `":`, `,` or `[`).
    "card": r"[0-9]{4}[ -][0-9]{4}[ -][0-9]{4}|(?:[^:,\[0-9]|[A-Za-z0-9]:)[0-9]{13}",
    "phone": r"[0-9]{3}[ .)-]{1,2}[0-9]{3}|\+[1-9][0-9 ().-]{6}",
}

# name → (regex, extra check of a match or None)
DETECTORS: dict[str, tuple[str, Callable[[re.Match[str]], bool] | None]] = {
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", None),
    "card": (r"\b(?:[0-9][ -]?){12,18}[0-9]\b", _card),
    "secret": (r"\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,})", None),
    # International (+CC then 1–4 groups) or North American (3-3-4) numbers.
    "phone": (r"(?:\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){1,4}[ .-]?[0-9]{2,4}\b"
              r"|\(?\b[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}\b)", None),
}


def mask(text: str) -> str:
    """Same length and character classes: letters → x, digits → 0, the rest kept."""
    return "".join("0" if c.isdigit() else "x" if c.isalpha() else c for c in text)


@dataclass(frozen=True)
class Rule:
    name: str
    drop: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    check: Callable[[re.Match[str]], bool] | None = None
    projects: frozenset[str] | None = None
    _drop_re: re.Pattern[str] | None = field(default=None, repr=False)
    # Finding candidates in raw text: plain substrings, or a (rough) regex.
    literals: tuple[str, ...] = ()
    rough: str | None = None

    def applies_to(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    def drops(self, key: str) -> bool:
        return self._drop_re is not None and self._drop_re.fullmatch(key) is not None

    def masked(self, text: str) -> str | None:
        """``text`` with this rule's matches masked, or None when nothing matched."""
        if self.pattern is None:
            return None
        hit = False

        def replace(m: re.Match[str]) -> str:
            nonlocal hit
            if self.check is not None and not self.check(m):
                return m.group(0)
            hit = True
            return mask(m.group(0))

        out = self.pattern.sub(replace, text)
        return out if hit else None


def make_rule(name: str, *, drop: list[str] | None = None, pattern: str | None = None,
              detector: str | None = None, projects: list[str] | None = None) -> Rule:
    check, literals, rough = None, (), pattern
    if detector is not None:
        if detector not in DETECTORS:
            raise RedactionError(f"rule {name!r}: no detector {detector!r} (have {', '.join(DETECTORS)})")
        pattern, check = DETECTORS[detector]
        literals, rough = LITERALS.get(detector, ()), ROUGH.get(detector)
    # A dropped key shows in the JSON text as "key": — its part before any wildcard is a plain substring.
    literals += tuple('"' + re.split(r"[*?\[]", glob, maxsplit=1)[0] for glob in drop or ())
    try:
        compiled = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise RedactionError(f"rule {name!r}: bad pattern: {exc}") from None
    drop_re = re.compile("|".join(fnmatch.translate(g) for g in drop)) if drop else None
    if compiled is None and drop_re is None:
        raise RedactionError(f"rule {name!r} neither drops keys nor masks a pattern")
    return Rule(name, tuple(drop or ()), compiled, check, frozenset(projects) if projects else None, drop_re,
                literals, rough)


def default_rules() -> list[Rule]:
    return [make_rule(name, detector=name) for name in DETECTORS]


def load_rules(source: str | Path) -> list[Rule]:
    """``default`` (the built-in detectors) or a TOML rules file."""
    if str(source) == "default":
        return default_rules()
    path = Path(source)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RedactionError(f"{path}: {exc}") from None
    rules = default_rules() if doc.get("use_defaults") else []
    for i, entry in enumerate(doc.get("rule", [])):
        name = str(entry.get("name") or f"rule-{i + 1}")
        try:
            rules.append(make_rule(name, drop=entry.get("drop"), pattern=entry.get("pattern"),
                                   detector=entry.get("detector"), projects=entry.get("projects")))
        except RedactionError as exc:
            raise RedactionError(f"{path}: {exc}") from None
    if not rules:
        raise RedactionError(f"{path}: no rules (add [[rule]] entries or use_defaults = true)")
    if len({r.name for r in rules}) != len(rules):
        raise RedactionError(f"{path}: rule names must differ")
    return rules


class _Values:
    """Applies rules to parsed values: strings masked, attribute keys dropped; counts what each rule changed."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        masks = [r.pattern.pattern for r in rules if r.pattern is not None]
        # A cheap first look at a string: could anything in it be masked?
        self.prefilter = re.compile("|".join(f"(?:{p})" for p in masks)) if masks else None
        self.drop_rules = [r for r in rules if r.drop]

    def string(self, text: str, project: str, hits: Counter[str]) -> str:
        if self.prefilter is None or not self.prefilter.search(text):
            return text
        for rule in self.rules:
            if rule.pattern is not None and rule.applies_to(project):
                out = rule.masked(text)
                if out is not None:
                    text = out
                    hits[rule.name] += 1
        return text

    def tree(self, value: Any, project: str, hits: Counter[str]) -> Any:
        """``value`` with every string in it masked."""
        if isinstance(value, str):
            return self.string(value, project, hits)
        if isinstance(value, list):
            return [self.tree(v, project, hits) for v in value]
        if isinstance(value, dict):
            return {key: self.tree(item, project, hits) for key, item in value.items()}
        return value

    def attributes(self, attrs: dict[str, Any], project: str, hits: Counter[str]) -> dict[str, Any]:
        """An attribute map without its dropped keys, its values masked."""
        return {key: self.tree(value, project, hits) for key, value in attrs.items()
                if not self._dropped(key, project, hits)}

    def item(self, item: dict[str, Any], project: str, hits: Counter[str]) -> dict[str, Any]:
        """An event or a link: its name masked, its attribute map as ``attributes``."""
        out = {**item, "attributes": self.attributes(item.get("attributes") or {}, project, hits)}
        if "name" in item:
            out["name"] = self.string(item["name"], project, hits)
        return out

    def _dropped(self, key: str, project: str, hits: Counter[str]) -> bool:
        for rule in self.drop_rules:
            if rule.applies_to(project) and rule.drops(key):
                hits[rule.name] += 1
                return True
        return False


# -- decoded spans and log records --------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where a decoded table keeps text: attribute maps (keys may be dropped), lists of items with attribute
    maps (events, links), whole JSON values (a log body), plain strings. ``bulk`` columns are looked at row by
    row, joined; ``per_value`` ones (the resource's and the scope's attributes: a few distinct values per
    export) once per distinct value. Normalised columns hold values taken from the attributes: a row whose
    attributes hold nothing to mask has nothing there either, so they are masked but not looked at first."""
    maps: tuple[str, ...]
    lists: tuple[str, ...]
    values: tuple[str, ...]
    strings: tuple[str, ...]
    bulk: tuple[str, ...]
    per_value: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.maps, *self.lists, *self.values, *self.strings)


SPANS = Layout(maps=("attributes", "resource_attributes", "scope_attributes"), lists=("events", "links"), values=(),
               strings=("name", "status_message", "session_id", "user_id", "agent_name", "tool_name", "error_type"),
               bulk=("attributes", "events", "links", "name", "status_message"),
               per_value=("resource_attributes", "scope_attributes"))
LOGS = Layout(maps=("attributes", "resource_attributes"), lists=(), values=("body",),
              strings=("event_name", "severity_text"), bulk=("attributes", "body", "event_name", "severity_text"),
              per_value=("resource_attributes",))


class TableRedactor(_Values):
    """The rules over a decoded table of spans (``SPANS``) or log records (``LOGS``)."""

    def __init__(self, rules: list[Rule]) -> None:
        super().__init__(rules)
        # One pass each over the text. Arrow's regular expressions find a pattern that starts with a literal
        # quickly (memchr); a plain substring search or an alternation of literals reads every byte.
        literals = sorted({re.escape(lit) for r in rules for lit in r.literals})
        roughs = sorted({r.rough for r in rules if r.rough})
        # Patterns that do not start with a literal each read every byte: one combined pass for all of them.
        self._passes = literals + (["|".join(f"(?:{p})" for p in roughs)] if roughs else [])

    def _candidates(self, spans: Any, layout: Layout) -> list[int]:
        """The rows whose text could match a rule (a superset: ``LITERALS``, ``ROUGH``, drop-key prefixes)."""
        bulk = pc.binary_join_element_wise(*[pc.fill_null(spans.column(n), "") for n in layout.bulk], "\n")
        found = self._matches(bulk, one_pass=False)
        for name in layout.per_value:
            column = spans.column(name)
            if column.null_count == len(column):
                continue
            encoded = pc.dictionary_encode(column.combine_chunks())
            found = pc.or_(found, pc.fill_null(pc.take(self._matches(encoded.dictionary, one_pass=True),
                                                       encoded.indices), False))
        return pc.indices_nonzero(found).to_pylist()

    def _matches(self, text: Any, one_pass: bool) -> Any:
        """Which values could match: one combined pattern (few values: each call's fixed cost dominates), or a
        pass per pattern (long texts: a pattern starting with a literal is found by memchr)."""
        patterns = ["|".join(f"(?:{p})" for p in self._passes)] if one_pass else self._passes
        found = pc.fill_null(pc.match_substring_regex(text, patterns[0]), False)
        for pattern in patterns[1:]:
            found = pc.or_(found, pc.fill_null(pc.match_substring_regex(text, pattern), False))
        return found

    def table(self, spans: Any, layout: Layout = SPANS) -> tuple[Any, Counter[str]]:
        """``spans`` (or log records, with ``LOGS``) with the rules applied, and per rule the rows it changed."""
        rows: dict[int, dict[str, Any]] = {}  # row → column → its value
        at = self._candidates(spans, layout)
        if at:
            taken = pa.array(at, pa.int64())
            columns = {name: spans.column(name).take(taken).to_pylist() for name in layout.columns}
            for k, i in enumerate(at):
                rows[i] = {name: values[k] for name, values in columns.items() if values[k] is not None}
        total: Counter[str] = Counter()
        if not rows:
            return spans, total
        projects = spans.column("project")
        changed: dict[str, dict[int, Any]] = {}
        for i, values in rows.items():
            project, hits = projects[i].as_py(), Counter()
            for name, value in values.items():
                if name in layout.strings:
                    new = self.string(value, project, hits)
                elif name in layout.maps:
                    new = orjson.dumps(self.attributes(orjson.loads(value), project, hits)).decode()
                elif name in layout.values:
                    new = orjson.dumps(self.tree(orjson.loads(value), project, hits)).decode()
                else:
                    new = orjson.dumps([self.item(item, project, hits) for item in orjson.loads(value)]).decode()
                if new != value:
                    changed.setdefault(name, {})[i] = new
            if hits:
                attrs = orjson.loads(changed.get("attributes", {}).get(i) or spans.column("attributes")[i].as_py())
                attrs[REDACTED_KEY] = sorted(hits)
                changed.setdefault("attributes", {})[i] = orjson.dumps(attrs).decode()
                total.update(hits.keys())
        for name, updates in changed.items():
            at = spans.schema.get_field_index(name)
            column = spans.column(at).combine_chunks()
            mask_ = pa.array([i in updates for i in range(spans.num_rows)])
            replacements = pa.array([updates[i] for i in sorted(updates)], column.type)
            spans = spans.set_column(at, name, pc.replace_with_mask(column, mask_, replacements))
        if total and "retrieval" in spans.column_names:
            spans = _refresh_retrieval(spans, set(i for updates in changed.values() for i in updates))
        return spans, total


def _refresh_retrieval(spans: Any, rows: set[int]) -> Any:
    """Retrieval records of changed retrieval steps, read again from their redacted attributes and events."""

    records = spans.column("retrieval")
    steps = [i for i in rows if records[i].is_valid]
    if not steps:
        return spans
    values = records.to_pylist()  # no masked replacement for struct columns in Arrow: rebuilt whole
    for i in steps:
        values[i] = retrieval.stored_record(spans.column("attributes")[i].as_py(), spans.column("events")[i].as_py(),
                                            spans.column("category")[i].as_py(), spans.column("name")[i].as_py())
    return spans.set_column(spans.schema.get_field_index("retrieval"), "retrieval", pa.array(values, RETRIEVAL))


_active: TableRedactor | None = None


def redacted(table: Any, layout: Layout = SPANS) -> tuple[Any, dict[str, int]]:
    """A decoded table (spans, or log records with ``LOGS``) with this process's rules applied (``configure``),
    and the rows each rule changed."""
    if _active is None or table.num_rows == 0:
        return table, {}
    table, hits = _active.table(table, layout)
    return table, dict(hits)


def configure(source: str | Path | None) -> None:
    """Use these rules in this process (the server and each decode worker); None: none."""
    global _active
    _active = TableRedactor(load_rules(source)) if source else None
