"""staff sign-in, invitations, and the agents' queue-view index

Revision ID: 0008_staff_sign_in
Revises: 0007_fulfilment
Create Date: 2026-11-23 02:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008_staff_sign_in'
down_revision = '0007_fulfilment'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('failed_sign_ins', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('password_set_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('invite_selector', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('invite_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('invite_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint('uq_users_invite_selector', ['invite_selector'])
    op.create_index('ix_incidents_worklist', 'incidents',
                    ['queue_id', 'status', 'resolution_due_at', 'id'])


def downgrade():
    op.drop_index('ix_incidents_worklist', table_name='incidents')
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint('uq_users_invite_selector', type_='unique')
        for column in ('invite_expires_at', 'invite_hash', 'invite_selector',
                       'password_set_at', 'locked_until', 'failed_sign_ins'):
            batch.drop_column(column)
