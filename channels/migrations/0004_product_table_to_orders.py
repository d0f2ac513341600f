"""Moving the catalogue (``Product``) from channels to orders, step 1 of 3: rename its table.

``channels_product`` becomes ``orders_product`` (the table of ``orders.Product``); rows, ids and
the foreign key from ``channels_skumapping`` stay as they are (PostgreSQL and SQLite both carry
a reference along with a table rename). The state still says ``channels.Product`` until
``orders.0007_product`` and ``channels.0005_skumapping_product_to_orders`` move it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("channels", "0003_rounding_choices")]

    operations = [migrations.AlterModelTable(name="product", table="orders_product")]
