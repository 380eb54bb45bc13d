"""Load what an acknowledgement log holds straight into a store, without a server: ``trajscope compact``
folds in what a crashed server had acknowledged but not loaded (a running server decodes it at start
instead, ``IngestPipeline.reload_earlier_run``).

Records are decoded in this process and written in loads of ``LOAD_ROWS`` spans; a record that no longer
decodes is quarantined as the server would. The log's segments go only once every
record is in a checkpointed store file: a failing write or checkpoint leaves them for the next start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from trajscope.collector import redaction
from trajscope.collector.ack_log import AckLog
from trajscope.collector.logs_ingest import LogsIngest, LogStore
from trajscope.collector.otlp_decode import InvalidRequest, decode_request
from trajscope.storage.loader import LOAD_ROWS, WritableStore, write_in_loads, write_isolated


def load_acknowledged(directory: str | Path, store: WritableStore,
                      progress: Callable[[str], None] | None = None) -> int:
    """Write every record of the acknowledgement log in ``directory`` into ``store`` and checkpoint it;
    returns the number of spans handed to it."""
    directory = Path(directory)
    if not any(directory.glob("seg-*.log")):
        return 0
    ack_log = AckLog(directory)
    exports = 0

    def decoded() -> Iterator[pa.Table]:
        nonlocal exports
        for project, body in ack_log.left_by_earlier_run():
            exports += 1
            try:
                batch = decode_request(body, project)
            except InvalidRequest as exc:
                ack_log.quarantine(project, body, exc)
                continue
            if batch.accepted:
                yield redaction.redacted(batch.table)[0]  # the rules this process was given (--redact)

    try:
        spans = write_in_loads(decoded(), lambda tables: write_isolated(store, tables, ack_log.quarantined),
                               LOAD_ROWS)
        store.checkpoint()
        ack_log.earlier_run_reloaded()
    finally:
        ack_log.close()
    if exports and progress:
        progress(f"loaded {spans} spans of {exports} acknowledged export(s) left in {directory}")
    return spans


def load_acknowledged_logs(directory: str | Path, store: LogStore,
                           progress: Callable[[str], None] | None = None) -> int:
    """The same for the OTLP logs' acknowledgement log (``logs_ingest.LOGS_ACK_DIR``); returns the records added."""
    directory = Path(directory)
    if not any(directory.glob("seg-*.log")):
        return 0
    ingest = LogsIngest(store, AckLog(directory))
    try:
        return ingest.reload_earlier_run(progress)
    finally:
        ingest.close()
