"""An export's resources whose project its key may not write, taken out before the export is acknowledged.

A resource's project is its ``trajscope.project`` (or ``openinference.project.name``) attribute, else the
export's default: the key's project when it names one, else the ``x-trajscope-project`` header, else
``default``. Resources of other projects are refused with OTLP's partial success; the rest is stored as sent.
Only exports under a key limited to some projects are parsed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.collector.auth import Grant
from trajscope.collector.dialects import PROJECT_RESOURCE_KEYS
from trajscope.collector.span_parts import project_of

# signal → (protobuf request, its resource field, the same in OTLP/JSON, the items field, the items per scope)
_SIGNALS = {
    "traces": (ExportTraceServiceRequest, "resource_spans", "resourceSpans", "scope_spans", "scopeSpans", "spans"),
    "logs": (ExportLogsServiceRequest, "resource_logs", "resourceLogs", "scope_logs", "scopeLogs", "log_records"),
}
_JSON_ITEMS = {"spans": "spans", "log_records": "logRecords"}


@dataclass(frozen=True)
class Restricted:
    body: bytes
    refused: int
    message: str


def default_project(grant: Grant, header: str | None) -> str:
    return grant.only_project or header or "default"


def admit(grant: Grant, header_project: str | None, body: bytes, encoding: str,
          signal: str) -> tuple[str, Restricted]:
    """What an export under ``grant`` writes, for both receivers: its default project, and its body without
    the resources the key may not write."""
    project = default_project(grant, header_project)
    return project, restrict(body, encoding, signal, grant, project)


def restrict(body: bytes, encoding: str, signal: str, grant: Grant, default: str) -> Restricted:
    """``body`` without the resources of projects ``grant`` does not allow; bodies that do not parse are left
    for the decoder to refuse as it always does."""
    if grant.projects is None:
        return Restricted(body, 0, "")
    if encoding == "json":
        return _restrict_json(body, signal, grant, default)
    request_type, field, _, scopes_field, _, items_field = _SIGNALS[signal]
    try:
        request = request_type.FromString(body)
    except DecodeError:
        return Restricted(body, 0, "")
    kept, refused, projects = [], 0, set()
    for resource in getattr(request, field):
        project = project_of({kv.key: kv.value.string_value for kv in resource.resource.attributes
                               if kv.key in PROJECT_RESOURCE_KEYS}, default)
        if grant.allows(project):
            kept.append(resource)
        else:
            refused += sum(len(getattr(scope, items_field)) for scope in getattr(resource, scopes_field))
            projects.add(project)
    if not projects:
        return Restricted(body, 0, "")
    del getattr(request, field)[:]
    getattr(request, field).extend(kept)
    return Restricted(request.SerializeToString(), refused, _message(grant, projects, refused))


def _restrict_json(body: bytes, signal: str, grant: Grant, default: str) -> Restricted:
    _, _, field, _, scopes_field, items_field = _SIGNALS[signal]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Restricted(body, 0, "")
    if not isinstance(doc, dict) or not isinstance(doc.get(field), list):
        return Restricted(body, 0, "")
    kept, refused, projects = [], 0, set()
    for resource in doc[field]:
        attrs = ((resource or {}).get("resource") or {}).get("attributes") or []
        named = {a.get("key"): (a.get("value") or {}).get("stringValue", "") for a in attrs if isinstance(a, dict)}
        project = project_of(named, default)
        if grant.allows(project):
            kept.append(resource)
        else:
            refused += sum(len(s.get(_JSON_ITEMS[items_field]) or []) for s in resource.get(scopes_field) or []
                           if isinstance(s, dict))
            projects.add(project)
    if not projects:
        return Restricted(body, 0, "")
    doc[field] = kept
    return Restricted(orjson.dumps(doc), refused, _message(grant, projects, refused))


def _message(grant: Grant, projects: set[str], refused: int) -> str:
    allowed = ", ".join(sorted(grant.projects or ()))
    return (f"{refused} refused: key {grant.name!r} may write to project(s) {allowed}, not "
            f"{', '.join(sorted(projects))}")


def merge(rejected: int, message: str, restricted: Restricted) -> tuple[int, str]:
    """An export's partial success with the refused resources added."""
    if not restricted.refused:
        return rejected, message
    return rejected + restricted.refused, "; ".join(m for m in (restricted.message, message) if m)
