"""Guardrail checks in each style a sender may use, normalised to one record."""

import pytest

from trajscope.analysis.guardrails import Check, checks, hits


def one(attrs, category="other", events=None, name="span"):
    found = checks(attrs, events, name, category)
    assert len(found) == 1
    return found[0]


def test_trajscope_convention_on_a_span():
    got = one({"guardrail.name": "pii", "guardrail.triggered": True, "guardrail.action": "block",
               "guardrail.reason": "email address", "guardrail.score": 0.93})
    assert got == Check("pii", True, "block", "email address", 0.93, "span")


def test_trajscope_convention_on_events_one_check_each():
    events = [{"name": "guardrail", "time_unix_nano": 5,
               "attributes": {"guardrail.name": "toxicity", "guardrail.triggered": False, "guardrail.score": 0.1}},
              {"name": "log", "attributes": {"guardrail.name": "ignored: not a guardrail event"}},
              {"name": "guardrail", "time_unix_nano": 9, "attributes": {"guardrail.name": "secrets",
                                                                        "guardrail.action": "redact"}}]
    found = checks({}, events, "moderate", "other")
    assert found == [Check("toxicity", False, None, None, 0.1, "event", 5),
                     Check("secrets", True, "redact", None, None, "event", 9)]
    assert hits(found) == 1


@pytest.mark.parametrize(("action", "triggered"), [("block", True), ("redact", True), ("warn", False),
                                                   ("allow", False), ("BLOCK", True)])
def test_without_triggered_the_action_decides(action, triggered):
    got = one({"guardrail.name": "g", "guardrail.action": action})
    assert (got.triggered, got.action) == (triggered, action.lower())


def test_guard_prefix_style_and_passed_inverted():
    got = one({"guard.name": "jailbreak", "guard.passed": False, "guard.reason": "role play"})
    assert got == Check("jailbreak", True, None, "role play", None, "span")
    assert one({"guard.name": "x", "guard.passed": "true"}).triggered is False


def test_rail_style_stop_means_blocked():
    assert one({"rail.name": "self check input", "rail.type": "input", "rail.stop": True}) == Check(
        "self check input", True, "block", None, None, "span")
    assert one({"rail.name": "self check output", "rail.stop": False}).triggered is False


def test_openinference_guardrail_span_without_outcome_is_unknown():
    got = one({"openinference.span.kind": "GUARDRAIL"}, category="guardrail", name="content_filter")
    assert got == Check("content_filter", None, None, None, None, "span")


def test_openai_agents_style_triggered_on_a_guardrail_span():
    assert one({"triggered": True}, category="guardrail", name="math_homework").triggered is True


def test_name_falls_back_to_the_span_name_and_plain_spans_have_no_checks():
    assert one({"guardrail.triggered": "true"}, name="check-1") == Check("check-1", True, None, None, None, "span")
    assert checks({"gen_ai.operation.name": "chat"}, [], "chat", "llm") == []


@pytest.mark.parametrize(("decision", "action", "triggered"), [
    ("deny", "block", True), ("modify", "redact", True), ("warn", "warn", False), ("allow", "allow", False),
    ("audit", "allow", False),
])
def test_genai_apply_guardrail_decisions(decision, action, triggered):
    attrs = {"gen_ai.operation.name": "apply_guardrail", "gen_ai.guardian.name": "Content Filter",
             "gen_ai.security.decision.type": decision, "gen_ai.security.decision.reason": "pii"}
    (check,) = checks(attrs, None, "apply_guardrail Content Filter", "guardrail")
    assert (check.name, check.action, check.triggered, check.reason) == ("Content Filter", action, triggered, "pii")


@pytest.mark.parametrize(("status", "triggered"), [("PASSED", False), ("FAILED", True), ("odd", None)])
def test_openllmetry_guardrail_status(status, triggered):
    attrs = {"gen_ai.operation.name": "guard", "gen_ai.guardrail.name": "no_ssn", "gen_ai.guardrail.status": status}
    (check,) = checks(attrs, None, "no_ssn.guard", "guardrail")
    assert (check.name, check.triggered, check.action) == ("no_ssn", triggered, None)


@pytest.mark.parametrize("event_name", ["gen_ai.guardrail.result", "gen_ai.security.finding", "guardrail"])
def test_guardrail_result_events_are_checks(event_name):
    events = [{"name": event_name, "time_unix_nano": 5,
               "attributes": {"gen_ai.guardrail.name": "jailbreak", "gen_ai.security.decision.type": "deny"}}]
    (check,) = checks({"gen_ai.operation.name": "chat"}, events, "chat", "llm")
    assert (check.name, check.triggered, check.action, check.source, check.time_unix_nano) == (
        "jailbreak", True, "block", "event", 5)
