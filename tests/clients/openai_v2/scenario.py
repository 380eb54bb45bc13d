"""The official OpenTelemetry OpenAI instrumentation (opentelemetry-instrumentation-openai-v2 with
opentelemetry-util-genai) around a real ``openai`` client against the fake server: one agent turn with a
tool call, the tool run in an ``execute_tool`` span of the application's own. Message content goes where
the stability mode sends it — per-message events by default, or with
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` the ``gen_ai.client.inference.operation.details``
event — as OTLP log records. Env: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, FAKE_OPENAI_BASE_URL."""

import json
import os

import openai
from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def main() -> None:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(logger_provider)
    trace.set_tracer_provider(tracer_provider)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    tracer = tracer_provider.get_tracer("weather-app")
    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-test", max_retries=0)
    with tracer.start_as_current_span("invoke_agent weather_agent",
                                      attributes={"gen_ai.operation.name": "invoke_agent",
                                                  "gen_ai.agent.name": "weather_agent"}):
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        call = first.choices[0].message.tool_calls[0]
        with tracer.start_as_current_span("execute_tool get_weather", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": call.id, "gen_ai.agent.name": "weather_agent"}):
            result = f"sunny in {json.loads(call.function.arguments)['city']}"
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": result}]
        final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    print(final.choices[0].message.content)
    tracer_provider.shutdown()
    logger_provider.shutdown()


if __name__ == "__main__":
    main()
