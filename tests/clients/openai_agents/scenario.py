"""The OpenAI Agents SDK (chat completions against the fake server) with an input guardrail and one function
tool, traced by OpenInference's openai-agents instrumentation into OTLP/HTTP. The SDK's own exporter to
OpenAI's backend is removed. Env: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, FAKE_OPENAI_BASE_URL."""

import os

from agents import (
    Agent,
    GuardrailFunctionOutput,
    Runner,
    function_tool,
    input_guardrail,
    set_default_openai_api,
    set_default_openai_client,
    set_trace_processors,
)
from openai import AsyncOpenAI
from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@input_guardrail
async def no_secrets(ctx, agent, user_input) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info={"checked": True}, tripwire_triggered="password" in str(user_input))


def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    set_trace_processors([])
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
    set_default_openai_client(AsyncOpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-test",
                                          max_retries=0), use_for_tracing=False)
    set_default_openai_api("chat_completions")
    agent = Agent(name="weather_agent", instructions="Answer briefly.", model="gpt-4o-mini",
                  tools=[get_weather], input_guardrails=[no_secrets])
    result = Runner.run_sync(agent, "What is the weather in Paris?")
    print(result.final_output)
    provider.shutdown()


if __name__ == "__main__":
    main()
