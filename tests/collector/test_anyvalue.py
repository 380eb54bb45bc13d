import math

import orjson
import pytest

from tests.otlp_builders import any_value
from trajscope.collector.anyvalue import any_value as decode
from trajscope.collector.anyvalue import untag

CASES = [
    ("text", "text"),
    (True, True),
    (False, False),
    (0, 0),
    (-(2**63), -(2**63)),
    (2**63 - 1, 2**63 - 1),
    (1.5, 1.5),
    (2.0, 2.0),
    (b"\x00\xffbytes", b"\x00\xffbytes"),
    ([1, "a", 2.5, True, b"x"], [1, "a", 2.5, True, b"x"]),
    ({"nested": {"deep": [1, {"k": b"v"}]}}, {"nested": {"deep": [1, {"k": b"v"}]}}),
    ({"$bytes": "looks like a tag"}, {"$bytes": "looks like a tag"}),
    ([], []),
    ({}, {}),
]


@pytest.mark.parametrize(("sent", "expected"), CASES)
def test_anyvalue_round_trips_through_json_with_its_type(sent, expected):
    stored = orjson.dumps(decode(any_value(sent)))
    back = untag(orjson.loads(stored))
    assert back == expected
    assert type(back) is type(expected)


def test_anyvalue_int_and_double_stay_distinct():
    assert type(untag(orjson.loads(orjson.dumps(decode(any_value(2)))))) is int
    assert type(untag(orjson.loads(orjson.dumps(decode(any_value(2.0)))))) is float


@pytest.mark.parametrize("special", [math.inf, -math.inf])
def test_anyvalue_non_finite_doubles_survive(special):
    assert untag(orjson.loads(orjson.dumps(decode(any_value(special))))) == special


def test_anyvalue_nan_survives():
    assert math.isnan(untag(orjson.loads(orjson.dumps(decode(any_value(math.nan))))))


def test_anyvalue_empty_is_null():
    assert decode(any_value(None)) is None
