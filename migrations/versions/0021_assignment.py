"""Queues may assign new incidents (round robin, or fewest open); agents may be away

Revision ID: 0021_assignment
Revises: 0020_classes
Create Date: 2026-12-02 16:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0021_assignment'
down_revision = '0020_classes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('queues') as batch:
        batch.add_column(sa.Column('assign_mode', sa.String(16), nullable=False,
                                   server_default='none'))
        batch.add_column(sa.Column('assigned_last_user_id', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('away_since', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('away_since')
    with op.batch_alter_table('queues') as batch:
        batch.drop_column('assigned_last_user_id')
        batch.drop_column('assign_mode')
