from django.urls import path

from fulfillment.views import carrier_webhook

urlpatterns = [path("<slug:carrier>/", carrier_webhook, name="carrier-webhook")]
