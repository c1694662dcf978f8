"""API tokens expire and may be read-only

Revision ID: 0015_token_expiry
Revises: 0014_portal_sign_in
Create Date: 2026-12-02 06:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0015_token_expiry'
down_revision = '0014_portal_sign_in'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('read_only', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    # Tokens issued before expiry existed run for the default lifetime from now.
    op.execute(sa.text(
        "UPDATE api_tokens SET expires_at = CURRENT_TIMESTAMP + INTERVAL '90 days'"
        if op.get_bind().dialect.name == 'postgresql'
        else "UPDATE api_tokens SET expires_at = datetime('now', '+90 days')"
    ))


def downgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('read_only')
        batch.drop_column('expires_at')
