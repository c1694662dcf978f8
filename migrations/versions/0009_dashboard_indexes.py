"""the dashboard's indexes: resolutions and breaches

Revision ID: 0009_dashboard_indexes
Revises: 0008_staff_sign_in
Create Date: 2026-11-23 05:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009_dashboard_indexes'
down_revision = '0008_staff_sign_in'
branch_labels = None
depends_on = None


COLUMNS = ('resolved_at', 'resolution_breached_at', 'response_breached_at')


def upgrade():
    for column in COLUMNS:
        op.create_index(f'ix_incidents_{column}', 'incidents', [column],
                        postgresql_where=sa.text(f'{column} IS NOT NULL'),
                        sqlite_where=sa.text(f'{column} IS NOT NULL'))


def downgrade():
    for column in COLUMNS:
        op.drop_index(f'ix_incidents_{column}', table_name='incidents')
