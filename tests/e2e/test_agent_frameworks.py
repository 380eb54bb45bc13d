"""Real instrumentations and agent frameworks, each from its own pinned environment (``tests/clients``), run one
agent turn against a local fake OpenAI server; the trajectory a user then reads is checked: its steps and
categories, agent names, the tool call linked to the model call that asked for it, tokens counted once,
guardrail outcomes, and the model calls' messages."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.clients import venvs
from tests.clients.fake_openai import ANSWER, ANSWER_TURN, TOOL_TURN, FakeOpenAI
from tests.e2e.conftest import wait_for

TOKENS_IN = TOOL_TURN["prompt_tokens"] + ANSWER_TURN["prompt_tokens"]
TOKENS_OUT = TOOL_TURN["completion_tokens"] + ANSWER_TURN["completion_tokens"]
QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAI() as base_url:
        yield base_url


def _run(server, fake_openai, client: str, service: str, **env: str) -> dict:
    """Run ``client``'s scenario; return its one trace: summary, spans, trajectory steps by span id."""
    python = venvs.python_of(client)
    endpoint = f"http://127.0.0.1:{server.http_port}"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
    child_env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": service,
                      "TRAJSCOPE_OTLP_HTTP": endpoint, "FAKE_OPENAI_BASE_URL": fake_openai,
                      "TRACELOOP_TELEMETRY": "false", "TRACELOOP_METRICS_ENABLED": "false",
                      "TRACELOOP_LOGGING_ENABLED": "false", "PYTHONUNBUFFERED": "1", **env})
    done = subprocess.run([str(python), str(venvs.scenario(client))], env=child_env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ANSWER in done.stdout
    listed = wait_for(lambda: [t for t in server.get("/api/v1/traces", limit=50).json()["traces"]
                               if t["service_name"] == service or t["root_name"].startswith(service)])
    assert len(listed) == 1, listed
    trace_id = listed[0]["trace_id"]

    def settled():
        trace = server.get(f"/api/v1/traces/{trace_id}").json()
        return trace if len(trace["spans"]) == listed[0]["span_count"] else None

    trace = wait_for(settled)
    steps = server.get(f"/api/v1/traces/{trace_id}/trajectory").json()
    summary = server.get("/api/v1/traces", limit=50).json()["traces"]
    return {"summary": next(t for t in summary if t["trace_id"] == trace_id), "spans": trace["spans"],
            "steps": steps["steps"], "totals": steps["totals"]}


def _by_category(run: dict, category: str) -> list[dict]:
    return [s for s in run["steps"] if s["category"] == category]


def _common_turn(run: dict, agent: str) -> tuple[list[dict], dict]:
    """Checks every framework's run shares: one agent step named ``agent`` among the steps, two model calls,
    one tool call linked to the first model call, tokens counted once. Returns (llm steps, tool step)."""
    assert agent in {s["agent_name"] for s in _by_category(run, "agent")}
    llms = _by_category(run, "llm")
    (tool,) = _by_category(run, "tool")
    assert len(llms) == 2
    assert tool["tool_name"] == "get_weather"
    assert tool["requested_by"] == llms[0]["span_id"]
    assert (run["summary"]["input_tokens"], run["summary"]["output_tokens"]) == (TOKENS_IN, TOKENS_OUT)
    assert (run["totals"]["input_tokens"], run["totals"]["output_tokens"]) == (TOKENS_IN, TOKENS_OUT)
    assert (run["summary"]["llm_calls"], run["summary"]["tool_calls"]) == (2, 1)
    assert [(s["input_tokens"], s["output_tokens"]) for s in llms] == [
        (TOOL_TURN["prompt_tokens"], TOOL_TURN["completion_tokens"]),
        (ANSWER_TURN["prompt_tokens"], ANSWER_TURN["completion_tokens"])]
    return llms, tool


def _messages(run: dict, span_id: str) -> dict:
    return next(s for s in run["spans"] if s["span_id"] == span_id)["messages"]


@pytest.mark.parametrize(("mode", "source"), [("default", "message_events"), ("latest", "event")])
def test_official_openai_instrumentation_in_both_stability_modes(server, fake_openai, mode, source):
    env = ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"} if mode == "latest"
           else {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"})
    run = _run(server, fake_openai, "openai_v2", f"openai-v2-{mode}", **env)
    llms, tool = _common_turn(run, "weather_agent")
    assert run["summary"]["root_name"] == "invoke_agent weather_agent"
    # Content arrived as OTLP log records (older per-message events, or the operation-details event).
    first = _messages(run, llms[0]["span_id"])
    assert first["sources"] == {"input": source, "output": source}
    assert first["input"][-1]["parts"][0]["content"] == QUESTION
    assert llms[0]["input_preview"] == QUESTION
    assert llms[0]["output_preview"].startswith("→ get_weather(")
    assert llms[1]["output_preview"] == ANSWER
    provider = {s["provider"] for s in run["spans"] if s["category"] == "llm"}
    assert provider == {"openai"}  # gen_ai.system (default) or gen_ai.provider.name (latest)
    assert tool["agent_name"] == "weather_agent"


def test_traceloop_workflow_agent_tool_and_guardrails(server, fake_openai):
    run = _run(server, fake_openai, "traceloop", "traceloop-weather")
    llms, _ = _common_turn(run, "weather_agent")
    root = run["steps"][0]
    # A Traceloop workflow is an agent invocation under the current conventions.
    assert (root["name"], root["category"], root["agent_name"]) == ("weather_support.workflow", "agent",
                                                                   "weather_support")
    assert run["summary"]["session_id"] == "tl-session-1"
    guards = {s["name"]: s["guardrail"] for s in _by_category(run, "guardrail")}
    assert guards == {
        "output_policy.guardrail": {"name": "output_policy", "triggered": True, "action": None},
        "no_ssn.guard": {"name": "no_ssn", "triggered": False, "action": None},
        "mentions_umbrella.guard": {"name": "mentions_umbrella", "triggered": True, "action": None},
    }
    assert run["summary"]["guardrail_hits"] == 2
    first = _messages(run, llms[0]["span_id"])
    assert first["sources"]["input"] == "span"
    assert [t.get("name") or t.get("function", {}).get("name") for t in first["tools"]] == ["get_weather"]
    assert llms[1]["output_preview"] == ANSWER


def test_openai_agents_sdk_with_openinference(server, fake_openai):
    run = _run(server, fake_openai, "openai_agents", "openai-agents")
    llms, _ = _common_turn(run, "weather_agent")
    (guard,) = _by_category(run, "guardrail")
    assert guard["name"] == "no_secrets"
    # The instrumentation records that the guardrail ran, not its outcome: shown as unknown, not as passed.
    assert guard["guardrail"] == {"name": "no_secrets", "triggered": None, "action": None}
    first = _messages(run, llms[0]["span_id"])
    assert first["sources"] == {"input": "openinference", "output": "openinference"}
    assert first["output"][0]["parts"][0]["type"] == "tool_call"
    assert llms[0]["input_preview"] == QUESTION
    assert llms[1]["output_preview"] == ANSWER


def test_strands_agents_native_genai_conventions(server, fake_openai):
    run = _run(server, fake_openai, "strands", "strands-weather",
               OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")
    llms, tool = _common_turn(run, "weather_agent")
    assert run["steps"][0]["name"] == "invoke_agent weather_agent"
    # The agent span repeats its calls' usage: counted once (checked above), and no step is left unmapped.
    assert not _by_category(run, "other")
    assert tool["tool_call_id"] is not None
    assert llms[0]["input_preview"] == QUESTION
    assert llms[1]["output_preview"] == ANSWER
