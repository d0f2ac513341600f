"""Public pages of fulfillment (mounted under ``/status/`` by ``config.urls``)."""

from django.urls import path

from fulfillment.status_returns import return_detail, return_label, start_return
from fulfillment.status_views import order_status

urlpatterns = [
    path("<str:token>/", order_status, name="order-status"),
    path("<str:token>/return/", start_return, name="order-status-start-return"),
    path("<str:token>/return/<str:rma>/", return_detail, name="order-status-return"),
    path("<str:token>/return/<str:rma>/label.pdf", return_label, name="order-status-return-label"),
]
