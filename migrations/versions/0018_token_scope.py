"""API tokens have a scope: full, read-only, or filing (a school system's)

Revision ID: 0018_token_scope
Revises: 0017_retention
Create Date: 2026-12-02 15:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0018_token_scope'
down_revision = '0017_retention'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('scope', sa.String(10), nullable=False,
                                   server_default='full'))
    op.execute("UPDATE api_tokens SET scope = 'read-only' WHERE read_only")
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('read_only')


def downgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('read_only', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    # A filing token becomes a full one of its employee: the narrowest the old schema has
    # that still files.
    op.execute("UPDATE api_tokens SET read_only = (scope = 'read-only')")
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('scope')
