"""Public pages of fulfillment (mounted under ``/status/`` by ``config.urls``)."""

from django.urls import path

from fulfillment.status_views import order_status

urlpatterns = [path("<str:token>/", order_status, name="order-status")]
