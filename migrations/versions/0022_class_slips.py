"""A class reset's one-time passwords go out as one message of printable slips

Revision ID: 0022_class_slips
Revises: 0021_assignment
Create Date: 2026-12-03 08:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0022_class_slips'
down_revision = '0021_assignment'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'class_resets',
        sa.Column('id', ID, primary_key=True),
        sa.Column('class_id', ID, sa.ForeignKey('classes.id'), nullable=False),
        sa.Column('filer_id', ID, sa.ForeignKey('users.id'), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_class_resets_class_id', 'class_resets', ['class_id'])
    with op.batch_alter_table('fulfilments') as batch:
        batch.add_column(sa.Column('class_reset_id', ID, nullable=True))
        batch.create_foreign_key('fk_fulfilments_class_reset', 'class_resets',
                                 ['class_reset_id'], ['id'])
        batch.create_index('ix_fulfilments_class_reset_id', ['class_reset_id'])


def downgrade():
    with op.batch_alter_table('fulfilments') as batch:
        batch.drop_index('ix_fulfilments_class_reset_id')
        batch.drop_constraint('fk_fulfilments_class_reset', type_='foreignkey')
        batch.drop_column('class_reset_id')
    op.drop_index('ix_class_resets_class_id', 'class_resets')
    op.drop_table('class_resets')
