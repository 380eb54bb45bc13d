"""A Strands agent with one tool, on the OpenAI model provider pointed at the fake server; Strands' own
OpenTelemetry spans (GenAI conventions) exported over OTLP/HTTP. Env: OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_SERVICE_NAME, FAKE_OPENAI_BASE_URL (and OTEL_SEMCONV_STABILITY_OPT_IN for the newest shapes)."""

import os

from strands import Agent, tool
from strands.models.openai import OpenAIModel
from strands.telemetry import StrandsTelemetry


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def main() -> None:
    telemetry = StrandsTelemetry()
    telemetry.setup_otlp_exporter()
    model = OpenAIModel(client_args={"base_url": os.environ["FAKE_OPENAI_BASE_URL"], "api_key": "sk-test"},
                        model_id="gpt-4o-mini")
    agent = Agent(name="weather_agent", model=model, tools=[get_weather], system_prompt="Answer briefly.",
                  callback_handler=None)
    result = agent("What is the weather in Paris?")
    print(str(result).strip())
    telemetry.tracer_provider.force_flush()
    telemetry.tracer_provider.shutdown()


if __name__ == "__main__":
    main()
