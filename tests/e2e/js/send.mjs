// Emit a small agent trace with the OpenTelemetry JS SDK and export it to trajscope.
// Usage: node send.mjs <http-json|http-proto> <endpoint> <service.name>; prints {"trace_id": ...}.
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

const [protocol, url, service] = process.argv.slice(2);
const Exporter = protocol === "http-json" ? JsonExporter : ProtoExporter;
const exporter = new Exporter({ url, compression: "gzip" });
const provider = new TracerProvider({
  resource: resourceFromAttributes({ "service.name": service }),
  spanProcessors: [new SimpleSpanProcessor({ exporter })],
});
const tracer = provider.getTracer("js-e2e", "1.0.0");

const root = tracer.startSpan("invoke_agent js-agent", {
  kind: SpanKind.SERVER,
  attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "js-agent",
                "session.id": "js-session" },
});
const ctx = trace.setSpan(context.active(), root);
const llm = tracer.startSpan("chat gpt-4o", {
  kind: SpanKind.CLIENT,
  attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 150, "gen_ai.usage.output_tokens": 25,
                "gen_ai.request.temperature": 0.25, "tags": ["a", "b"] },
}, ctx);
llm.addEvent("gen_ai.choice", { index: 0 });
llm.end();
const tool = tracer.startSpan("execute_tool lookup", {
  attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup" },
}, ctx);
tool.setStatus({ code: SpanStatusCode.ERROR, message: "lookup failed" });
tool.end();
root.end();
await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ trace_id: root.spanContext().traceId }));
