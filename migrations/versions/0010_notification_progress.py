"""notifications remember which addresses accepted them

Revision ID: 0010_notification_progress
Revises: 0009_dashboard_indexes
Create Date: 2026-11-23 06:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0010_notification_progress'
down_revision = '0009_dashboard_indexes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notifications') as batch:
        batch.add_column(sa.Column('sent_to', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('notifications') as batch:
        batch.drop_column('sent_to')
