"""the dashboard's index of resolutions

Revision ID: 0009_resolved_at_index
Revises: 0008_staff_sign_in
Create Date: 2026-11-23 05:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009_resolved_at_index'
down_revision = '0008_staff_sign_in'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_incidents_resolved_at', 'incidents', ['resolved_at'],
                    postgresql_where=sa.text('resolved_at IS NOT NULL'),
                    sqlite_where=sa.text('resolved_at IS NOT NULL'))


def downgrade():
    op.drop_index('ix_incidents_resolved_at', table_name='incidents')
