"""each portal names the store holding its passwords (sql, ldap, active_directory, scim)

Revision ID: 0013_credential_stores
Revises: 0012_access
Create Date: 2026-12-01 19:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013_credential_stores'
down_revision = '0012_access'
branch_labels = None
depends_on = None

OLD_LIVE = "state IN ('pending', 'credential_set', 'delivery_failed')"
NEW_LIVE = "state IN ('pending', 'credential_set', 'delivery_failed', 'directory_failed')"


def _live_index(where):
    with op.batch_alter_table('fulfilments') as batch:
        batch.drop_index('ux_fulfilments_live_incident')
        batch.create_index('ux_fulfilments_live_incident', ['incident_id'], unique=True,
                           postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def upgrade():
    with op.batch_alter_table('portal_policies') as batch:
        batch.add_column(sa.Column('store', sa.String(24), nullable=False, server_default='sql'))
        batch.add_column(sa.Column('directory_url', sa.String(255), nullable=True))
        batch.add_column(sa.Column('directory_bind_dn', sa.String(255), nullable=True))
        batch.add_column(sa.Column('directory_base_dn', sa.String(255), nullable=True))
        batch.add_column(sa.Column('directory_find', sa.String(500), nullable=True))
        batch.add_column(sa.Column('directory_password_change', sa.String(16), nullable=True))
        batch.add_column(sa.Column('directory_start_tls', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    _live_index(NEW_LIVE)


def downgrade():
    _live_index(OLD_LIVE)
    with op.batch_alter_table('portal_policies') as batch:
        for column in ('directory_start_tls', 'directory_password_change', 'directory_find',
                       'directory_base_dn', 'directory_bind_dn', 'directory_url', 'store'):
            batch.drop_column(column)
