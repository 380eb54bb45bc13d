"""``normalise.normalise`` for a whole request at once, over ``attribute_columns``.

Same tables (``dialects``), same answers: for every normalised field each attribute gets a rank (its key's
position in the field's candidate list, if the value converts), and each span takes its lowest-ranked
attribute — one NumPy reduction per request for all fields instead of probing every candidate key of every
span in Python. The value-dependent rules that touch few spans (Traceloop entity names, GenAI span-name
prefixes, exception events, token totals made whole) run in Python on just those spans. The per-span
``normalise`` stays the reference; a test checks both agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trajscope.analysis.guardrails import ATTRIBUTE_KEYS, SIGNAL_KEYS
from trajscope.collector import dialects
from trajscope.collector.attribute_columns import BOOL, DOUBLE, INT, STR, AttributeColumns
from trajscope.collector.normalise import NORMALISED_FIELDS, _as_float, _as_int, _exception_type, saturated

_STRING_FIELDS = tuple(dialects.STRING_FIELDS)
_INT_FIELDS = tuple(dialects.INT_FIELDS)
# Rank columns: category, the string fields, the int fields, cost.
_CATEGORY = 0
_STRING_COLS = range(1, 1 + len(_STRING_FIELDS))
_INT_COLS = range(1 + len(_STRING_FIELDS), 1 + len(_STRING_FIELDS) + len(_INT_FIELDS))
_COST = 1 + len(_STRING_FIELDS) + len(_INT_FIELDS)
_WIDTH = _COST + 1
_NONE = 255
_PRESENCE_BASE = 100  # category by presence ranks after every kind attribute
_KIND_MAPS = dict(dialects.CATEGORY_BY_KIND)
_PRESENCE = {key: i for i, (key, _) in enumerate(dialects.CATEGORY_BY_PRESENCE)}
_CATEGORY_CODES = {c: i for i, c in enumerate(dialects.CATEGORIES)}
_CATEGORY_NAMES = dialects.CATEGORIES
_PRESENCE_CODES = np.array([_CATEGORY_CODES[c] for _, c in dialects.CATEGORY_BY_PRESENCE], np.int64)
_INT64 = 2.0**63
_GUARDRAIL = _CATEGORY_CODES["guardrail"]


def _role(key: str) -> np.ndarray:
    row = np.full(_WIDTH, _NONE, np.uint8)
    for rank, (kind_key, _) in enumerate(dialects.CATEGORY_BY_KIND):
        if key == kind_key:
            row[_CATEGORY] = rank
    if key in _PRESENCE and row[_CATEGORY] == _NONE:
        row[_CATEGORY] = _PRESENCE_BASE + _PRESENCE[key]
    for col, field in zip(_STRING_COLS, _STRING_FIELDS, strict=True):
        if key in dialects.STRING_FIELDS[field]:
            row[col] = dialects.STRING_FIELDS[field].index(key)
    for col, field in zip(_INT_COLS, _INT_FIELDS, strict=True):
        if key in dialects.INT_FIELDS[field]:
            row[col] = dialects.INT_FIELDS[field].index(key)
    if key in dialects.FLOAT_FIELDS["cost_usd"]:
        row[_COST] = dialects.FLOAT_FIELDS["cost_usd"].index(key)
    return row


_roles: dict[str, np.ndarray] = {}
# Distinct attribute keys remembered; past it the memory starts afresh (a sender minting new keys in every
# span must not grow the decoder without bound).
ROLES_KEPT = 65_536


def _roles_of(keys: list[str]) -> np.ndarray:
    if len(_roles) + len(keys) > ROLES_KEPT:
        _roles.clear()
    rows = []
    for key in keys:
        row = _roles.get(key)
        if row is None:
            row = _roles[key] = _role(key)
        rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, _WIDTH), np.uint8)


_NARROW_CODES_BELOW = 1 << 24  # attributes per request for a rank (8 bits) and an index to share 32 bits


def _winners(ranks: np.ndarray, starts: np.ndarray, spans: int) -> np.ndarray:
    """Per span and rank column, the attribute with the lowest rank below ``_NONE`` (or -1)."""
    out = np.full((spans, ranks.shape[1]), -1, np.int64)
    counts = np.diff(starts)
    has = (counts > 0).nonzero()[0]
    if has.size == 0:
        return out
    # Rank above the attribute's index in one integer, so one minimum finds both; 32 bits hold both up to
    # 16M attributes and halve the memory the reduction streams through (1.1 → 0.8 ms per 2,048 spans).
    shift = max(1, len(ranks).bit_length())
    dtype = np.uint32 if len(ranks) < _NARROW_CODES_BELOW else np.uint64
    code = (ranks.astype(dtype) << dtype(shift)) | np.arange(len(ranks), dtype=dtype)[:, None]
    best = np.minimum.reduceat(code, starts[has], axis=0)
    found = (best >> dtype(shift)) < _NONE
    out[has] = np.where(found, (best & dtype((1 << shift) - 1)).astype(np.int64), -1)
    return out


# Keys whose string values are read besides the dialect tables': Traceloop entity names, and the
# guardrail keys (``guardrails.ATTRIBUTE_KEYS``), which the decoder hands to ``guardrails.checks``.
_VALUE_KEYS = frozenset({"traceloop.span.kind", "traceloop.entity.name"}) | ATTRIBUTE_KEYS


def wanted(keys: list[str]) -> np.ndarray:
    """Per key, whether normalisation reads its string values (``attribute_columns.decode``'s ``wanted``)."""
    return (_roles_of(keys) < _NONE).any(axis=1) | np.fromiter((k in _VALUE_KEYS for k in keys), np.bool_,
                                                               len(keys))


def normalise_columns(cols: AttributeColumns, names: pa.StringArray,
                      events: dict[int, list[dict[str, Any]]]) -> tuple[dict[str, list[Any]], np.ndarray]:
    """Normalised fields of every span (``normalise.NORMALISED_FIELDS`` → one list each), and per span
    whether its attributes may record a guardrail check — a guardrail key, or the guardrail category
    (``guardrails.checks`` needs those spans' attributes as a dict; events are the caller's to check)."""
    spans = len(names)
    starts = cols.span_starts
    vtype = cols.vtype
    n = len(vtype)
    if n == 0:
        bare = _without_attributes(names, events)
        return bare, np.fromiter((c == "guardrail" for c in bare["category"]), np.bool_, spans)
    roles = _roles_of(cols.keys)
    ranks = roles[cols.key_index] if n else np.zeros((0, _WIDTH), np.uint8)

    finite = np.isfinite(cols.doubles)
    as_text = (((vtype == STR) & (cols.string_length > 0)) | (vtype == INT) | ((vtype == DOUBLE) & finite)
               | (vtype == BOOL))
    integral = (vtype == DOUBLE) & finite & (cols.doubles == np.floor(cols.doubles))
    # Counts that do not fit the int64 columns are not counts (``normalise._as_int``).
    beyond = integral & ((cols.doubles < -_INT64) | (cols.doubles >= _INT64))
    as_int = (vtype == INT) | (integral & ~beyond)
    as_float = (vtype == INT) | ((vtype == DOUBLE) & finite)

    # Strings where a number is expected: converted as the reference does, one by one (rare).
    parsed: dict[int, tuple[int | None, float | None]] = {}
    numeric = ((vtype == STR) & (ranks[:, _INT_COLS.start:_COST + 1] < _NONE).any(axis=1)).nonzero()[0]
    if numeric.size:
        for i, text in zip(numeric.tolist(), cols.strings.take(pa.array(numeric)).to_pylist(), strict=True):
            as_i = _as_int(text)
            parsed[i] = (as_i, _as_float(text))
            as_int[i] = as_i is not None
            as_float[i] = parsed[i][1] is not None

    # Category: a kind attribute counts only when its (lower-cased) value maps to a category.
    category_of = np.full(n, -1, np.int64)
    kind_rank = ranks[:, _CATEGORY]
    kinds = (kind_rank < _PRESENCE_BASE).nonzero()[0]
    if kinds.size:
        # Mapped once per distinct (key, value): kind attributes repeat a handful of values.
        encoded = cols.strings.take(pa.array(kinds)).dictionary_encode()
        values = encoded.dictionary.to_pylist()
        value_index = np.asarray(encoded.indices.fill_null(-1), np.int64) + 1
        pairs, inverse = np.unique(cols.key_index[kinds].astype(np.int64) * (len(values) + 1) + value_index,
                                   return_inverse=True)
        codes = np.array([_kind_code(cols.keys[int(p) // (len(values) + 1)],
                                     values[int(p) % (len(values) + 1) - 1] if p % (len(values) + 1) else None)
                          for p in pairs], np.int64)[inverse]
        ranks[kinds[codes < 0], _CATEGORY] = _NONE
        category_of[kinds] = codes
    presence = (kind_rank >= _PRESENCE_BASE) & (kind_rank < _NONE)
    if presence.any():
        category_of[presence] = _PRESENCE_CODES[kind_rank[presence].astype(np.int64) - _PRESENCE_BASE]

    ranks[:, _STRING_COLS.start:_STRING_COLS.stop][~as_text] = _NONE
    ranks[:, _INT_COLS.start:_INT_COLS.stop][~as_int] = _NONE
    ranks[~as_float, _COST] = _NONE
    win = _winners(ranks, starts, spans)

    out: dict[str, list[Any]] = {}
    cat = win[:, _CATEGORY]
    codes = np.where(cat >= 0, category_of[np.maximum(cat, 0)], len(dialects.CATEGORIES) - 1)
    by_kind = (cat >= 0) & (ranks[np.maximum(cat, 0), _CATEGORY] < _PRESENCE_BASE)
    hits = _prefix_hits(names)
    _name_categories(hits, codes, by_kind)
    out["category"] = [_CATEGORY_NAMES[c] for c in codes.tolist()]

    # All string fields in one take: spans × fields winners, flattened.
    sw = win[:, _STRING_COLS.start:_STRING_COLS.stop]
    taken = cols.strings.take(pa.array(sw.T.ravel(), mask=sw.T.ravel() < 0)).to_pylist()
    for k, field in enumerate(_STRING_FIELDS):
        values = taken[k * spans:(k + 1) * spans]
        w = sw[:, k]
        # Numbers and booleans where a string is expected read as Python's str() of the value.
        for s in ((w >= 0) & (vtype[np.maximum(w, 0)] != STR)).nonzero()[0].tolist():
            values[s] = str(cols.value(int(w[s])))
        out[field] = values

    int_values = np.where(vtype == INT, cols.ints, np.where(integral & ~beyond, cols.doubles, 0).astype(np.int64))
    for col, field in zip(_INT_COLS, _INT_FIELDS, strict=True):
        out[field] = _numbers(win[:, col], int_values, parsed, 0)
    float_values = np.where(vtype == INT, cols.ints.astype(np.float64), cols.doubles)
    out["cost_usd"] = _numbers(win[:, _COST], float_values, parsed, 1)

    _entity_names(cols, out)
    _name_prefixes(names, hits, out)
    for s, span_events in events.items():
        if out["error_type"][s] is None:
            out["error_type"][s] = _exception_type(span_events)
    _whole_totals(out, win)

    signal_ids = [i for i, k in enumerate(cols.keys) if k in SIGNAL_KEYS]
    signal = codes == _GUARDRAIL
    if signal_ids:
        hit = np.isin(cols.key_index, signal_ids)
        signal[cols.span_of[hit]] = True
    return {f: out[f] for f in NORMALISED_FIELDS}, signal


# GenAI span-name prefixes read by the category rule and the field rule, each found once per request.
_NAME_PREFIXES = tuple(dict.fromkeys(p for p, _ in (*dialects.CATEGORY_BY_NAME_PREFIX, *dialects.NAME_PREFIX_FIELDS)))


def _prefix_hits(names: pa.StringArray) -> dict[str, np.ndarray]:
    """Per GenAI span-name prefix, which spans' names start with it (one Arrow pass each)."""
    return {p: np.asarray(pc.starts_with(names, p).fill_null(False), np.bool_) for p in _NAME_PREFIXES}


def _name_categories(hits: dict[str, np.ndarray], codes: np.ndarray, decided: np.ndarray) -> None:
    """Spans no kind attribute decided take a GenAI span name's operation (``CATEGORY_BY_NAME_PREFIX``)."""
    decided = decided.copy()
    for prefix, category in dialects.CATEGORY_BY_NAME_PREFIX:
        found = hits[prefix] & ~decided
        if found.any():
            codes[found] = _CATEGORY_CODES[category]
            decided |= found


def _without_attributes(names: pa.StringArray, events: dict[int, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {f: [None] * len(names) for f in NORMALISED_FIELDS}
    codes = np.full(len(names), len(dialects.CATEGORIES) - 1, np.int64)
    hits = _prefix_hits(names)
    _name_categories(hits, codes, np.zeros(len(names), np.bool_))
    out["category"] = [_CATEGORY_NAMES[c] for c in codes.tolist()]
    _name_prefixes(names, hits, out)
    for s, span_events in events.items():
        out["error_type"][s] = _exception_type(span_events)
    return out


def _kind_code(key: str, value: str | None) -> int:
    mapped = _KIND_MAPS[key].get(value.lower()) if value is not None else None
    return -1 if mapped is None else _CATEGORY_CODES[mapped]


def _numbers(w: np.ndarray, values: np.ndarray, parsed: dict[int, tuple[Any, Any]], which: int) -> list[Any]:
    """The winning attribute's number per span (None where none): from the typed column, or as parsed."""
    out: list[Any] = [None] * len(w)
    found = (w >= 0).nonzero()[0]
    if found.size:
        chosen = w[found]
        for s, i, v in zip(found.tolist(), chosen.tolist(), values[chosen].tolist(), strict=True):
            out[s] = parsed[i][which] if i in parsed else v
    return out


def _entity_names(cols: AttributeColumns, out: dict[str, list[Any]]) -> None:
    """Traceloop names the tool or agent in ``traceloop.entity.name``, qualified by its span kind."""
    if "traceloop.span.kind" not in cols.keys:
        return
    kid = cols.keys.index("traceloop.span.kind")
    named: list[tuple[int, str]] = []
    for i in (cols.key_index == kid).nonzero()[0].tolist():
        field = dialects.ENTITY_NAME_BY_KIND.get(str(cols.value(i)).lower())
        if field:
            named.append((int(cols.span_of[i]), field))
    if not named:
        return
    spans = np.unique(np.array([s for s, _ in named], np.int64))
    entity = dict(zip(spans.tolist(), cols.values_of(spans, _ENTITY_NAME), strict=True))
    for s, field in named:
        if out[field][s] is None:
            value = entity[s].get("traceloop.entity.name")
            if value is not None and not isinstance(value, dict | list):
                out[field][s] = (value if isinstance(value, str) else str(value)) or None


_ENTITY_NAME = frozenset({"traceloop.entity.name"})


def _name_prefixes(names: pa.StringArray, hits: dict[str, np.ndarray], out: dict[str, list[Any]]) -> None:
    # Found by Arrow over the request, then only the matching names in Python (a startswith per span was
    # ~0.55 ms per 2,048 spans, this ~0.25; one regex for all prefixes then a prefix loop per match ~0.9).
    for prefix, field in dialects.NAME_PREFIX_FIELDS:
        found = np.flatnonzero(hits[prefix])
        if len(found):
            values = out[field]
            for s, name in zip(found.tolist(), names.take(pa.array(found)).to_pylist(), strict=True):
                if values[s] is None:
                    values[s] = name[len(prefix):].strip() or None


def _whole_totals(out: dict[str, list[Any]], win: np.ndarray) -> None:
    """As ``normalise``: a sub-count larger than its total means the total was reported without it."""
    inp, cached, created = out["input_tokens"], out["cached_input_tokens"], out["cache_creation_input_tokens"]
    outp, reasoning = out["output_tokens"], out["reasoning_tokens"]
    sub = {field: col for col, field in zip(_INT_COLS, _INT_FIELDS, strict=True)}
    with_input_sub = (win[:, sub["cached_input_tokens"]] >= 0) | (win[:, sub["cache_creation_input_tokens"]] >= 0)
    for s in with_input_sub.nonzero()[0].tolist():
        total = inp[s]
        if total is not None and (cached[s] or 0) + (created[s] or 0) > total:
            inp[s] = saturated(total + (cached[s] or 0) + (created[s] or 0))
    for s in (win[:, sub["reasoning_tokens"]] >= 0).nonzero()[0].tolist():
        total = outp[s]
        if total is not None and reasoning[s] is not None and reasoning[s] > total:
            outp[s] = saturated(total + reasoning[s])
