"""Screens of the order core outside the admin's model pages."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest

from orders import privacy

PERM_PRIVACY_EXPORT = "orders.download_privacy_export"


@staff_member_required
def privacy_export_download(request: HttpRequest, name: str) -> FileResponse:
    """A customer's data export (``orders.privacy``), for ops_admin only; never under
    ``MEDIA_URL``. Only file names the export writes are served, from its own folder."""
    if not request.user.has_perm(PERM_PRIVACY_EXPORT):
        raise PermissionDenied
    path = privacy.export_path(name)
    if path is None:
        raise Http404("No such export")
    response = FileResponse(
        open(path, "rb"), as_attachment=True, filename=path.name, content_type="application/json"
    )
    response["Cache-Control"] = "no-store"
    return response
