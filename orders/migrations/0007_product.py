"""Moving the catalogue (``Product``) from channels to orders, step 2 of 3: the state.

``orders.Product`` takes over the table ``channels.0004_product_table_to_orders`` renamed to
``orders_product``; nothing is created in the database. The content type moves with it, so
the existing permissions (``view_product``...), the groups and users holding them, and the
admin log keep pointing at the catalogue.
"""

from django.contrib.contenttypes.models import ContentType as GlobalContentType
from django.db import migrations, models


def _move_content_type(apps, schema_editor, source: str, target: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    existing = content_type.objects.using(db).filter(model="product")
    if existing.filter(app_label=target).exists():
        return  # already there (a fresh database gets it from post_migrate instead)
    existing.filter(app_label=source).update(app_label=target)
    content_type.objects.clear_cache()
    GlobalContentType.objects.clear_cache()  # the running process may have cached the old row


def forwards(apps, schema_editor):
    _move_content_type(apps, schema_editor, "channels", "orders")


def backwards(apps, schema_editor):
    _move_content_type(apps, schema_editor, "orders", "channels")


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0006_order_address_outcome"),
        ("channels", "0004_product_table_to_orders"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Product",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("sku", models.CharField(max_length=100, unique=True)),
                        ("title", models.CharField(max_length=255)),
                        ("weight_grams", models.PositiveIntegerField(blank=True, null=True)),
                        (
                            "hs_code",
                            models.CharField(
                                blank=True, help_text="Customs tariff code.", max_length=12
                            ),
                        ),
                        (
                            "origin_country",
                            models.CharField(
                                blank=True, help_text="ISO 3166-1 alpha-2", max_length=2
                            ),
                        ),
                        ("tags", models.JSONField(blank=True, default=list)),
                        ("is_active", models.BooleanField(default=True)),
                    ],
                    options={"ordering": ["sku"]},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
