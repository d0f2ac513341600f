"""Reconcile a period: import what is configured, match, compute the variance, raise an incident
while money is unexplained; close a period (its figures frozen, who closed it), and show a closed
period's difference against its close instead of changing it.

``reconcile`` is what the ``reconcile`` command and the nightly job run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from django.db import IntegrityError, transaction

from orders import money
from orders.errors import InvalidInput
from orders.incidents import incident_raise
from orders.models import IncidentCategory, Severity
from reconciliation.importers import ImportOptions, configured_imports, import_api
from reconciliation.matching import MatchSummary, match_all
from reconciliation.models import AuditEntry, ImportRun, PeriodClose
from reconciliation.variance import COLUMNS, Period, Row, compute_period

log = structlog.get_logger(__name__)


@dataclass
class Report:
    period: Period
    rows: list[Row]
    matched: MatchSummary
    imports: list[ImportRun] = field(default_factory=list)
    import_errors: list[str] = field(default_factory=list)
    closed: PeriodClose | None = None
    # A closed period computed again: (channel, currency, column) -> (at the close, now).
    changes: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)

    @property
    def unexplained(self) -> dict[str, Decimal]:
        """Unexplained money per currency (absolute, summed over the comparisons)."""
        out: dict[str, Decimal] = {}
        for row in self.rows:
            out[row.currency] = out.get(row.currency, Decimal(0)) + row.unexplained_total
        return out


def row_figures(row: Row) -> dict[str, Any]:
    """A row as text amounts in its currency's units (what a close keeps)."""

    def s(values: dict[str, Decimal]) -> dict[str, str]:
        return {k: str(money.normalize(v, row.currency)) for k, v in values.items()}

    return {"channel": row.channel, "currency": row.currency, "columns": s(row.columns),
            "differences": s(row.differences), "unexplained": s(row.unexplained)}  # fmt: skip


def reconcile(*, period: Period, channel: Any = None, do_import: bool = True,
              progress: Callable[..., Any] | None = None) -> Report:  # fmt: skip
    imports: list[ImportRun] = []
    errors: list[str] = []
    if do_import:
        for options in configured_imports(period=period, channel=channel, progress=progress):
            try:
                imports += import_api(options=options)
            except Exception as exc:  # one source down does not stop the others
                errors.append(f"{options.source}: {exc}")
                log.warning("reconcile.import_failed", source=options.source,
                            error=type(exc).__name__)  # fmt: skip
    channel_id = channel.pk if channel is not None else None
    matched = match_all(since=period.start, until=period.end, channel_id=channel_id)
    rows = compute_period(period, channel_id=channel_id)
    report = Report(period=period, rows=rows, matched=matched, imports=imports,
                    import_errors=errors)  # fmt: skip
    report.closed = PeriodClose.objects.filter(period=period.label, channel=channel).first()
    if report.closed is not None:
        report.changes = _changes(report.closed, rows)
    for row in rows:
        if row.unexplained_total:
            incident_raise(
                category=IncidentCategory.RECONCILIATION_VARIANCE, severity=Severity.HIGH,
                summary=f"{period.label} {row.channel}: {row.unexplained_total} {row.currency} "
                        "unexplained",
                key=f"{period.label}:{row.channel}:{row.currency}",
                details={"period": period.label, "channel": row.channel,
                         "currency": row.currency,
                         "unexplained": {k: str(v) for k, v in row.unexplained.items() if v}},
            )  # fmt: skip
    log.info("reconcile.done", period=period.label, rows=len(rows),
             unexplained={k: str(v) for k, v in report.unexplained.items()})  # fmt: skip
    return report


def period_recompute(*, period: Period, channel: Any = None, user: Any) -> Report:
    """A person's "Recompute" on the period close page: match and compute again (no imports),
    audited."""
    report = reconcile(period=period, channel=channel, do_import=False)
    AuditEntry.objects.create(
        user=user, action="period_recompute", subject=f"period:{period.label}",
        data={"channel": channel.slug if channel is not None else None,
              "unexplained": {k: str(money.normalize(v, k))
                              for k, v in report.unexplained.items()}},
    )  # fmt: skip
    return report


def period_changes(closed: PeriodClose, rows: list[Row]) -> dict[tuple[str, str, str],
                                                                  tuple[str, str]]:  # fmt: skip
    """A closed period's columns that differ now: (channel, currency, column) -> (then, now)."""
    return _changes(closed, rows)


def _changes(closed: PeriodClose, rows: list[Row]
             ) -> dict[tuple[str, str, str], tuple[str, str]]:  # fmt: skip
    then = {(r["channel"], r["currency"]): r for r in closed.figures.get("rows", [])}
    changes: dict[tuple[str, str, str], tuple[str, str]] = {}
    seen = set()
    for row in rows:
        seen.add((row.channel, row.currency))
        before = then.get((row.channel, row.currency), {}).get("columns", {})
        for column in COLUMNS:
            now = row.columns.get(column, Decimal(0))
            was = before.get(column)
            if was is None or Decimal(was) != now:
                changes[(row.channel, row.currency, column)] = (was or "-", str(now))
    for (channel, currency), r in then.items():
        if (channel, currency) not in seen:
            for column, was in r.get("columns", {}).items():
                changes[(channel, currency, column)] = (was, "-")
    return changes


def period_close(*, period: Period, channel: Any = None, user: Any, note: str = "") -> PeriodClose:
    """Freeze the period's figures as they are now (computed fresh), and record who closed it.
    A period is closed once; computing it again later shows the difference."""
    if PeriodClose.objects.filter(period=period.label, channel=channel).exists():
        raise InvalidInput(f"{period.label} is closed already", code="already_closed")
    rows = compute_period(period, channel_id=channel.pk if channel is not None else None)
    try:
        with transaction.atomic():
            closed = PeriodClose.objects.create(
                period=period.label, channel=channel, closed_by=user, note=note.strip(),
                figures={"rows": [row_figures(r) for r in rows]},
            )  # fmt: skip
            AuditEntry.objects.create(
                user=user, action="period_close", subject=f"period:{period.label}",
                data={"channel": channel.slug if channel is not None else None,
                      "unexplained": {r.currency: str(r.unexplained_total) for r in rows}},
            )  # fmt: skip
    except IntegrityError:
        raise InvalidInput(f"{period.label} is closed already", code="already_closed") from None
    return closed


HEADERS = ("channel", "cur", "sales", "refunds", "ERP", "processor", "fees", "payouts", "bank",
           "variance %", "unexplained")  # fmt: skip


def table_lines(report: Report) -> list[str]:
    """The report as the command prints it: a title, a header and one line per row."""
    table: list[tuple[str, ...]] = [HEADERS]
    for row in report.rows:

        def s(value: Decimal, cur: str = row.currency) -> str:
            return str(money.normalize(value, cur))

        pct = row.variance_percent
        table.append((row.channel, row.currency, *(s(row.columns.get(c, Decimal(0))) for c in
                      ("sales", "refunds", "erp", "processor", "fees", "payouts", "bank")),
                      "-" if pct is None else f"{pct}%", s(row.unexplained_total)))  # fmt: skip
    widths = [max(len(str(r[i])) for r in table) for i in range(len(HEADERS))]
    period = report.period
    lines = [f"Reconciliation {period.label} ({period.start} to {period.end})"]
    for r in table:
        cells = zip(r, widths, strict=True)
        lines.append("  ".join(str(v).rjust(w) if i > 1 else str(v).ljust(w)
                               for i, (v, w) in enumerate(cells)))  # fmt: skip
    return lines


__all__ = ["ImportOptions", "Report", "period_changes", "period_close", "period_recompute",
           "reconcile", "row_figures", "table_lines"]  # fmt: skip
