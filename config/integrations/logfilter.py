"""Query strings out of urllib3's own log lines.

urllib3 logs "Retrying (...) after connection broken by ...: /path?query" (WARNING) and the
request line with its query (DEBUG). Verifier queries carry the address (USPS) or the API key
(Canada Post), channel cursors carry tokens: this filter cuts every query string out of those
records before any handler sees them, so every integration can use urllib3's ``Retry``.

A logger's filters run only for records logged on that very logger (not for its children's),
so the filter goes on each urllib3 logger that writes URLs.
"""

from __future__ import annotations

import logging
import re

# The loggers in urllib3 2.x that write a URL (connectionpool: retries and request lines;
# util.retry: "Incremented Retry for (url=...)"; poolmanager: redirects).
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager")
_QUERY = re.compile(r"\?[^\s'\"]+")


class DropQueryStrings(logging.Filter):
    """Renders the record once and replaces each ``?query`` with ``?[query]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "?" in text:
            record.msg = _QUERY.sub("?[query]", text)
            record.args = ()
        return True


_FILTER = DropQueryStrings()


def install() -> None:
    """Put the filter on urllib3's loggers (idempotent: called by the layer and by logging)."""
    for name in URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropQueryStrings) for f in logger.filters):
            logger.addFilter(_FILTER)
