"""Prometheus metrics of the ingest path (exported at /metrics).

Labels are channel slugs and vendor topics (bounded: only verified deliveries reach a topic
label), never ids or personal data.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter(
    "ingest_events_received", "Webhook deliveries stored in the inbox", ["channel", "topic"]
)
DUPLICATES = Counter(
    "ingest_duplicate_deliveries", "Re-deliveries answered 200 and not processed again",
    ["channel", "topic"],
)  # fmt: skip
SIGNATURE_FAILURES = Counter(
    "ingest_signature_failures", "Deliveries refused for a missing or wrong signature", ["channel"]
)
SIGNATURE_MATCHES = Counter(
    "ingest_signature_matches", "Verified deliveries by the secret that matched: current, or "
    "previous while a rotated-out secret is in its grace window", ["channel", "secret"],
)  # fmt: skip
TOO_LARGE = Counter("ingest_payload_too_large", "Deliveries refused as too large", ["channel"])
QUARANTINED = Counter(
    "ingest_events_quarantined", "Events kept aside with readable errors", ["channel", "topic"]
)
PROCESSED = Counter(
    "ingest_events_processed", "Events turned into order changes", ["channel", "topic", "outcome"]
)
PROCESSING_SECONDS = Histogram(
    "ingest_processing_seconds", "Time to process one inbox event", ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
ACK_SECONDS = Histogram(
    "ingest_webhook_ack_seconds", "Time to answer a webhook delivery", ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)  # fmt: skip
PAYLOAD_BYTES = Histogram(
    "ingest_payload_bytes", "Size of accepted webhook bodies", ["channel"],
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304),
)  # fmt: skip
