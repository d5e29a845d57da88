"""The console's search moves beside the catalog (``images.search``).

The two trigram indexes of 0007 made a sync's every new or changed image cost
about twice as much. They are rebuilt on ``images_imagesearch``, which the
search service fills after each sync, and dropped from ``images_image``. The
existing catalog is copied across, and each account is marked current at its
catalog version (read first, so every row it covers is committed and copied).
"""

import django.db.models.deletion
from django.db import migrations, models


OLD_INDEXES = {"image_external_id_trgm": "external_id", "image_name_trgm": "name"}
NEW_INDEXES = {"imagesearch_external_id_trgm": "external_id", "imagesearch_name_trgm": "name"}


# A catch-up appends a whole first sync's entries to the pending list and then
# merges them in bulk (images.search); 0009 set the same on the old indexes.
PENDING = "WITH (fastupdate = on, gin_pending_list_limit = 65536)"


def _trigram_indexes(cursor, table: str, indexes: dict[str, str]) -> None:
    for index, column in indexes.items():
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {index} ON {table} "
            f"USING gin (UPPER({column}::text) gin_trgm_ops) {PENDING}"
        )


def _has_trigrams(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    return cursor.fetchone() is not None


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO images_imagesearchstate (account_id, version) "
            "SELECT id, catalog_version FROM images_provideraccount"
        )
        cursor.execute(
            "INSERT INTO images_imagesearch (image_id, account_id, external_id, name) "
            "SELECT id, account_id, external_id, name FROM images_image"
        )
        if schema_editor.connection.vendor == "postgresql" and _has_trigrams(cursor):
            _trigram_indexes(cursor, "images_imagesearch", NEW_INDEXES)
            for index in OLD_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {index}")


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        if schema_editor.connection.vendor == "postgresql" and _has_trigrams(cursor):
            _trigram_indexes(cursor, "images_image", OLD_INDEXES)


class Migration(migrations.Migration):

    dependencies = [
        ('images', '0009_search_trigram_pending_list'),
    ]

    operations = [
        migrations.CreateModel(
            name='ImageSearch',
            fields=[
                ('image', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='images.image')),
                ('account_id', models.BigIntegerField(db_index=True)),
                ('external_id', models.CharField(max_length=255)),
                ('name', models.CharField(blank=True, max_length=255)),
            ],
        ),
        migrations.CreateModel(
            name='ImageSearchState',
            fields=[
                ('account', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='images.provideraccount')),
                ('version', models.BigIntegerField(default=-1)),
            ],
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
