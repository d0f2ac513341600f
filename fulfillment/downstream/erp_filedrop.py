"""ERP posting by file drop: one CSV per action in ``ERP_DROP_DIR`` (default ``var/erp-drop``),
which the ERP's import job (or an SFTP sync) picks up.

The file is named after the action's idempotency key, so a retry rewrites the same file and
never adds a second one. It is written atomically: into a temporary file in the same folder
(same file system), flushed and fsynced, then ``os.replace``d over the final name and the folder
fsynced; an importer never sees half a file, and a crash leaves at most a hidden ``.tmp`` file
that the next attempt does not depend on.

One row per order line; order-level amounts repeat on every row. No personal data: ids, SKUs,
quantities and amounts only. Every row goes through ``config.csvfiles.csv_row``: the channel's
text (order number, order id, SKU) cannot run as a formula in a spreadsheet, while amounts are
passed as ``Decimal`` and counts as ``int`` so they stay numbers the ERP imports.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings

from config.csvfiles import csv_row
from fulfillment.downstream.base import DownstreamError, order_lines, order_of, safe_key
from orders import money

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction

log = structlog.get_logger(__name__)

COLUMNS = [
    "idempotency_key", "order_id", "channel", "external_id", "order_number", "placed_at",
    "currency", "line_no", "sku", "quantity", "unit_price", "discount", "tax", "line_total",
    "order_subtotal", "order_discount", "order_shipping", "order_tax", "order_total",
    "ship_to_country", "correlation_id",
]  # fmt: skip


def drop_dir() -> Path:
    """``ERP_DROP_DIR`` (relative paths are relative to the project), else ``VAR_DIR/erp-drop``."""
    configured = str(settings.ERP_DROP_DIR or "")
    if not configured:
        return Path(settings.VAR_DIR) / "erp-drop"
    path = Path(configured)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def file_name(idempotency_key: str) -> str:
    return f"order-{safe_key(idempotency_key)}.csv"


def drop_file_write(name: str, data: bytes, *, what: str) -> Path:
    """Write ``data`` as ``name`` in the drop folder, atomically; a failure is retryable (a full
    disk or a missing mount may clear up; a person sees it after the last try)."""
    folder = drop_dir()
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DownstreamError(f"could not write the {what} {path.name}: {reason}",
                              retryable=True) from exc  # fmt: skip
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename, fsync folder)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every platform can open a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class FileDropERPAdapter:
    target = "filedrop"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        order = order_of(action)
        cur = order.currency

        def amount(value: Decimal) -> Decimal:
            # A number, not text: csv_row writes it as is (``-12.50`` stays ``-12.50``).
            return money.normalize(value, cur)

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(csv_row(COLUMNS))
        lines = order_lines(order)
        for line in lines:
            writer.writerow(csv_row([
                action.idempotency_key, order.pk, order.channel.slug, order.external_id,
                order.order_number, order.placed_at.isoformat(), cur, line.line_no, line.sku,
                line.quantity, amount(line.unit_price), amount(line.discount_allocation),
                amount(line.tax_allocation), amount(line.net),
                amount(order.subtotal), amount(order.discount_total),
                amount(order.shipping_total), amount(order.tax_total), amount(order.total),
                order.ship_to_country, action.correlation_id,
            ]))  # fmt: skip
        data = buffer.getvalue().encode("utf-8")
        path = drop_file_write(file_name(action.idempotency_key), data, what="ERP drop file")
        digest = hashlib.sha256(data).hexdigest()
        log.info("erp_filedrop.written", action_id=action.pk, order_id=order.pk, file=path.name)
        return {"file": path.name, "rows": len(lines), "sha256": digest}
