"""When an ended incident's typed details were purged; the audit trail may forget words

The trail stays append-only, with one exception: an event's message and data may be
emptied (message NULL, data {}) when its retention period is over. Who, when, what kind
and which transition can still never change, and no event can be deleted.

Revision ID: 0017_retention
Revises: 0016_student_email
Create Date: 2026-12-02 08:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0017_retention'
down_revision = '0016_student_email'
branch_labels = None
depends_on = None

_SKELETON = ("id", "incident_id", "at", "actor_id", "kind", "from_status", "to_status")


def _postgresql_function(allow_forgetting):
    kept = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in _SKELETON)
    forgetting = (
        f"IF TG_OP = 'UPDATE' AND {kept} AND NEW.message IS NULL "
        "AND NEW.data::text = '{}' THEN RETURN NEW; END IF;"
        if allow_forgetting else ""
    )
    return f"""
        CREATE OR REPLACE FUNCTION incident_events_append_only() RETURNS trigger AS $$
        BEGIN
            {forgetting}
            RAISE EXCEPTION 'incident_events is append-only';
        END;
        $$ LANGUAGE plpgsql
    """


def _sqlite_update_trigger(allow_forgetting):
    op.execute("DROP TRIGGER incident_events_no_update")
    kept = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _SKELETON)
    when = (f" WHEN NOT ({kept} AND NEW.message IS NULL AND NEW.data = '{{}}')"
            if allow_forgetting else "")
    op.execute(
        f"CREATE TRIGGER incident_events_no_update BEFORE UPDATE ON incident_events{when} "
        "BEGIN SELECT RAISE(ABORT, 'incident_events is append-only'); END"
    )


def _trail(allow_forgetting):
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_postgresql_function(allow_forgetting))
    else:
        _sqlite_update_trigger(allow_forgetting)


def upgrade():
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
    _trail(allow_forgetting=True)


def downgrade():
    _trail(allow_forgetting=False)
    with op.batch_alter_table('incidents') as batch:
        batch.drop_column('purged_at')
