"""What decoding a protobuf export will accept, found before it is decoded.

An export is acknowledged on the raw-body log (``ack_log``) and decoded behind the acknowledgement, yet
OTLP's answer must already say which spans were refused (partial success) or that the body is not a
request at all (INVALID_ARGUMENT / 400). Both decoders accept exactly the bodies the protobuf runtime
parses (the columnar one hands anything it does not read to the reference walker) and refuse exactly the
spans ``span_problem`` names, so a full parse plus that check per span gives the same verdict as the
decode, at a tenth of the decode's cost (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from trajscope.collector import limits
from trajscope.collector.limits import within_export_limit
from trajscope.collector.otlp_decode import parse_request
from trajscope.collector.span_parts import (
    INT64_MAX,
    MAX_MESSAGES,
    ZERO_SPAN,
    ZERO_TRACE,
    problem_message,
    rejection_message,
    span_problem,
)


@dataclass(frozen=True)
class Verdict:
    accepted: int
    rejected: int
    error_message: str


def validate_request(payload: bytes) -> Verdict:
    """The spans decoding ``payload`` will keep and refuse (with OTLP's partial-success message); raises
    ``InvalidRequest`` for a body that is not an ``ExportTraceServiceRequest``."""
    request = parse_request(payload)
    accepted = rejected = 0
    messages: list[str] = []
    for r_index, resource_spans in enumerate(request.resource_spans):
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            for p_index, span in enumerate(scope_spans.spans):
                # ``span_problem``'s checks, inline for the valid spans (half the time per request).
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                if (len(trace_id) == 16 and len(span_id) == 8 and trace_id != ZERO_TRACE and span_id != ZERO_SPAN
                        and (not parent or len(parent) == 8) and span.start_time_unix_nano <= INT64_MAX
                        and span.end_time_unix_nano <= INT64_MAX):
                    accepted += 1
                    continue
                problem = span_problem(span) or "invalid span"
                rejected += 1
                if len(messages) < MAX_MESSAGES:
                    messages.append(problem_message(r_index, s_index, p_index, problem))
    return Verdict(*within_export_limit(accepted, rejected, rejection_message(rejected, messages),
                                        limits.SPANS_PER_EXPORT))
