"""Role groups: customer_service, reviewer, finance, ops_admin (see orders/roles.py)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from orders.roles import sync_roles

    sync_roles(apps=apps, using=schema_editor.connection.alias)


def drop_roles(apps, schema_editor):
    from orders.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_orderevent_append_only"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("channels", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("django_celery_beat", "__latest__"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
