from django.db import migrations

import shop_reco.models


class AlterFieldOnPostgreSQL(migrations.AlterField):
    """Only PostgreSQL's column changes (it gains the "C" collation); SQLite would rebuild the whole event table
    for the new field class alone, to the same columns."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("shop_reco", "0005_list_writes_without_fk_index"),
    ]

    operations = [
        AlterFieldOnPostgreSQL(
            model_name="event",
            name="client_event_id",
            field=shop_reco.models.OpaqueIdField(blank=True, max_length=64, null=True),
        ),
        AlterFieldOnPostgreSQL(
            model_name="event",
            name="visitor_id",
            field=shop_reco.models.OpaqueIdField(blank=True, default="", max_length=64),
        ),
    ]
