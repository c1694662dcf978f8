"""each portal's sign-in address, for the reset page and emails to link to

Revision ID: 0014_portal_sign_in
Revises: 0013_credential_stores
Create Date: 2026-12-02 05:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014_portal_sign_in'
down_revision = '0013_credential_stores'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('portal_policies') as batch:
        batch.add_column(sa.Column('sign_in_url', sa.String(255), nullable=True))


def downgrade():
    with op.batch_alter_table('portal_policies') as batch:
        batch.drop_column('sign_in_url')
