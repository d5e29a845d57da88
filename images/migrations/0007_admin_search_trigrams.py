"""Trigram indexes for the console's image search (PostgreSQL only).

The admin's search is ``UPPER(column::text) LIKE UPPER('%term%')``; without an
index every search reads the whole catalog. pg_trgm is a trusted extension
(PostgreSQL 13+), so the database owner may create it; where it is not
available the search still works, unindexed. Other databases are left alone.
"""

from django.db import migrations

COLUMNS = {"image_external_id_trgm": "external_id", "image_name_trgm": "name"}


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            return
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for index, column in COLUMNS.items():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {index} ON images_image "
                f"USING gin (UPPER({column}::text) gin_trgm_ops)"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for index in COLUMNS:
            cursor.execute(f"DROP INDEX IF EXISTS {index}")


class Migration(migrations.Migration):
    dependencies = [("images", "0006_admin_console")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
