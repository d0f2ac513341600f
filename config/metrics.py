"""Per-step Prometheus metrics of the pipeline and the orchestration (exported at /metrics).

A low module on purpose: ``orders``, ``channels`` and ``fulfillment`` all import it, so one
histogram covers the whole path of an order and a dashboard (``reviews.dashboard``) or a Grafana
panel reads every step the same way: ``histogram_quantile(0.95, sum by (le, step)
(rate(pipeline_step_seconds_bucket[5m])))``.

Label values stay bounded: ``processing`` (one inbox event), ``check:<name>`` (each registered
validation check), ``allocation``, ``routing``, ``label``, ``downstream:<target>`` (configured
targets only) and ``tracking_writeback``; never ids or personal data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

# From a 1 ms check to a 30 s carrier call: the same buckets for every step, so their
# quantiles are comparable and a sum by step stays meaningful.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

STEP_SECONDS = Histogram(
    "pipeline_step_seconds",
    "Time of one step of the order pipeline or orchestration",
    ["step"],
    buckets=STEP_BUCKETS,
)
CHECK_OUTCOMES = Counter(
    "validation_check_outcomes",
    "Validation check results by check and outcome (passed, failed, or another verdict)",
    ["check", "outcome"],
)


@contextmanager
def timed(step: str) -> Iterator[None]:
    """Observe the wall time of the block under ``pipeline_step_seconds{step=...}``, also when
    it raises (a failing carrier call took its time too). Usable as a decorator."""
    started = time.perf_counter()
    try:
        yield
    finally:
        STEP_SECONDS.labels(step).observe(time.perf_counter() - started)


def observe(step: str, seconds: float) -> None:
    """Record a duration measured elsewhere (the validation runner times each check itself)."""
    STEP_SECONDS.labels(step).observe(seconds)
