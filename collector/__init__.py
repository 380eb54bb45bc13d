"""Collector: OTLP on the wire → normalised span records (Arrow) ready for storage.

One export, in the order its modules handle it:

1. receive — ``grpc_receiver``, ``http_receiver`` (auth, media types, gzip, size limits);
2. the flow — ``pipeline`` (backlog check, the acknowledgement, decoding behind it);
3. validate — ``validate`` (the partial-success verdict, before the acknowledgement);
4. log — ``ack_log`` (the fsynced log of raw bodies: the acknowledgement point);
5. decode — ``decode_batches`` and ``decode_pool`` (queued exports decoded together in worker processes),
   ``columnar_decode`` (the hot path: ``wire``, ``attribute_columns``, ``normalise_columns``), ``otlp_decode``
   (the reference walker), ``otlp_json`` and ``otlp_json_build`` (OTLP/JSON), ``ranges`` (numbers bounded);
6. load — ``storage.loader`` (into the store, checkpointed, then released from the log).

Log exports (GenAI events) take a shorter path: the receivers hand them to ``logs_ingest`` (decode with
``otlp_logs``, their own acknowledgement log, write to ``log_records``, release after a checkpoint); they are
joined to their spans when a trace is read (``analysis.log_events``).

Start-up and offline: ``ack_replay`` loads what a crashed server left in the log. Prices at ingest:
``costing`` holds the price table in force (``analysis.pricing`` computes costs; ``storage.repricing``
re-costs what is stored).
"""
