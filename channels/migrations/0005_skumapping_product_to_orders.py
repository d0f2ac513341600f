"""Moving the catalogue (``Product``) from channels to orders, step 3 of 3: the mappings.

``SkuMapping.product`` now points at ``orders.Product`` and ``channels.Product`` leaves the
state. Nothing changes in the database: the foreign key already references ``orders_product``
(the table was renamed in ``channels.0004_product_table_to_orders``).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0004_product_table_to_orders"),
        ("orders", "0007_product"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="skumapping",
                    name="product",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="mappings",
                        to="orders.product",
                    ),
                ),
                migrations.DeleteModel(name="Product"),
            ],
            database_operations=[],
        ),
    ]
