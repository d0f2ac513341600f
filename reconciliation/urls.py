"""The finance screens (``reconciliation.views``), under ``/admin/reconciliation/finance/``."""

from django.urls import path

from reconciliation import views

urlpatterns = [
    path("period/", views.period_page, name="period"),
    path("column/", views.column_page, name="column"),
    path("items/", views.items_page, name="items"),
    path("items/<int:item_id>/", views.item_page, name="item"),
    path("payouts/", views.payouts_page, name="payouts"),
    path("payouts/<int:payout_id>/", views.payout_page, name="payout"),
]
