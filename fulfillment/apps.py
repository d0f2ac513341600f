from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "fulfillment"
    verbose_name = "Fulfillment"
    default_auto_field = "django.db.models.BigAutoField"
