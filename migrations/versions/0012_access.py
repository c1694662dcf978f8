"""sessions can be ended server-side; queues say which incident types they fulfil

Revision ID: 0012_access
Revises: 0011_incident_search
Create Date: 2026-12-01 18:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012_access'
down_revision = '0011_incident_search'
branch_labels = None
depends_on = None

# The support procedure (SPEC §5): identity runs every reset, reminder and revocation;
# student systems runs student resets; the service desk sends username reminders.
SHIPPED = {
    'its-identity': ['student_password_reset', 'parent_password_reset', 'username_reminder',
                     'access_revocation'],
    'its-student-systems': ['student_password_reset'],
    'its-service-desk': ['username_reminder'],
}


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), nullable=False,
                                   server_default='0'))
    with op.batch_alter_table('queues') as batch:
        batch.add_column(sa.Column('fulfils', sa.JSON(), nullable=False, server_default='[]'))
    queues = sa.table('queues', sa.column('slug', sa.String), sa.column('fulfils', sa.JSON))
    for slug, kinds in SHIPPED.items():
        op.execute(queues.update().where(queues.c.slug == slug).values(fulfils=kinds))


def downgrade():
    with op.batch_alter_table('queues') as batch:
        batch.drop_column('fulfils')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
