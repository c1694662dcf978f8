"""incident search: a trigram index over what a search reads (PostgreSQL)

Revision ID: 0011_incident_search
Revises: 0010_notification_progress
Create Date: 2026-11-23 07:40:00

A search for a rare word read every incident (6.5 s at 1,000,000, bench/README.md).
pg_trgm's GIN index answers ILIKE '%word%' on an expression; the expression here is
helpdesk.models.incidents.search_text_sql() as it stood, written out so that this
migration never changes: a change there needs a new migration (a test checks a search
still uses this index). pg_trgm is a trusted extension (PostgreSQL 13 and later), so the
database's owner may create it. SQLite, the small embedded default, has no such index.
"""
from alembic import op


revision = '0011_incident_search'
down_revision = '0010_notification_progress'
branch_labels = None
depends_on = None


SEARCH_TEXT = (
    "(coalesce(summary, '') || ' ' || "
    "coalesce(notes, '') || ' ' || "
    "coalesce(details ->> 'student_id', '') || ' ' || "
    "coalesce(details ->> 'student_name', '') || ' ' || "
    "coalesce(details ->> 'parent_name', '') || ' ' || "
    "coalesce(details ->> 'parent_given_name', '') || ' ' || "
    "coalesce(details ->> 'parent_family_name', '') || ' ' || "
    "coalesce(details ->> 'child_given_name', '') || ' ' || "
    "coalesce(details ->> 'child_family_name', '') || ' ' || "
    "coalesce(details ->> 'parent_account_number', '') || ' ' || "
    "coalesce(details ->> 'contact_phone', ''))"
)


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.execute(f'CREATE INDEX ix_incidents_search ON incidents USING gin ({SEARCH_TEXT} gin_trgm_ops)')


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP INDEX IF EXISTS ix_incidents_search')
