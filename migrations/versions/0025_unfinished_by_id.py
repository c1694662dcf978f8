"""Filing's duplicate check reads one person's unfinished incidents in id order

Revision ID: 0025_unfinished_by_id
Revises: 0024_self_service
Create Date: 2026-12-03 15:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0025_unfinished_by_id'
down_revision = '0024_self_service'
branch_labels = None
depends_on = None

UNFINISHED = ("status IN ('new', 'triaged', 'in_progress', 'awaiting_reply', "
              "'awaiting_fulfilment')")


def _indexes(*columns):
    for column in ('portal_account_id', 'guardian_id'):
        name = f'ix_incidents_unfinished_{column}'
        op.drop_index(name, 'incidents')
        op.create_index(name, 'incidents', [column, *columns],
                        postgresql_where=sa.text(UNFINISHED), sqlite_where=sa.text(UNFINISHED))


def upgrade():
    _indexes('id')


def downgrade():
    _indexes()
