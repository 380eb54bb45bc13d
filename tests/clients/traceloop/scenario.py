"""OpenLLMetry (traceloop-sdk): a workflow around an agent that calls the OpenAI client (instrumented by
OpenLLMetry) against the fake server and runs a tool, then its answer through ``traceloop.sdk.guardrail``
with one guard that passes and one that fails. Env: TRAJSCOPE_OTLP_HTTP (base URL), FAKE_OPENAI_BASE_URL."""

import asyncio
import json
import os

import openai
from traceloop.sdk import Traceloop
from traceloop.sdk.decorators import agent, tool, workflow
from traceloop.sdk.guardrail import Guardrails

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


@tool(name="get_weather")
def get_weather(city: str) -> str:
    return f"sunny in {city}"


@agent(name="weather_agent")
def answer(client: openai.OpenAI, question: str) -> str:
    messages = [{"role": "user", "content": question}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    result = get_weather(**json.loads(call.function.arguments))
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": result}]
    final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    return final.choices[0].message.content


async def no_ssn(guard_input: dict) -> bool:
    return "ssn" not in json.dumps(guard_input).lower()


async def mentions_umbrella(guard_input: dict) -> bool:
    return "umbrella" in json.dumps(guard_input).lower()


@workflow(name="weather_support")
def run() -> str:
    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-test", max_retries=0)
    text = answer(client, "What is the weather in Paris?")

    async def produce() -> str:
        return text

    guarded = Guardrails(no_ssn, mentions_umbrella, name="output_policy", on_failure="ignore", run_all=True,
                         parallel=False)
    asyncio.run(guarded.run(produce))
    return text


def main() -> None:
    Traceloop.init(app_name="traceloop-weather", api_endpoint=os.environ["TRAJSCOPE_OTLP_HTTP"],
                   disable_batch=True, telemetry_enabled=False)
    Traceloop.set_association_properties({"session_id": "tl-session-1"})
    print(run())


if __name__ == "__main__":
    main()
