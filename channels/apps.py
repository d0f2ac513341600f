from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    label = "channels"
    verbose_name = "Sales channels"
    default_auto_field = "django.db.models.BigAutoField"
