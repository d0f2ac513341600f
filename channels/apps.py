from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    label = "channels"
    verbose_name = "Sales channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from channels import checks, privacy, tasks  # noqa: F401  (tasks: the Celery tasks)
        from channels.models import SalesChannel
        from channels.selectors import channel_cache_clear
        from config.registry import lazy
        from orders import feedback
        from orders.validation import register

        register(checks.SkuMappedCheck())
        # The webhook path's per-process channel cache forgets a channel that changed.
        for signal in (post_save, post_delete):
            signal.connect(channel_cache_clear, sender=SalesChannel,
                           dispatch_uid=f"channels.cache.{signal is post_save}")  # fmt: skip
        privacy.register()  # inbox events in privacy exports and redactions
        # Tracking write-back per channel kind (channels.writeback), built when first used.
        for kind, module, name in WRITEBACKS:
            feedback.register(kind, lazy(f"channels.writeback.{module}", name, call=True))
        # Our refunds sent to the channel (channels.writeback.refunds), per kind.
        for kind, name in REFUND_WRITERS:
            feedback.register_refunds(kind, lazy("channels.writeback.refunds", name, call=True))


# (channel kind, module in channels.writeback, its ChannelWriteback class)
WRITEBACKS = [
    ("shopify", "shopify", "ShopifyWriteback"),
    ("bigcommerce", "bigcommerce", "BigCommerceWriteback"),
    ("amazon", "amazon", "AmazonWriteback"),
    ("woocommerce", "woocommerce", "WooCommerceWriteback"),
    ("custom", "custom", "CustomWriteback"),
]

# (channel kind, its ChannelRefunds class in channels.writeback.refunds)
REFUND_WRITERS = [
    ("shopify", "ShopifyRefunds"),
    ("woocommerce", "WooCommerceRefunds"),
    ("bigcommerce", "BigCommerceRefunds"),
]
