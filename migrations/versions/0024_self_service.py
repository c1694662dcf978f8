"""Self-service recovery: every attempt on the public pages, and the user its incidents are filed by

Revision ID: 0024_self_service
Revises: 0023_incident_links
Create Date: 2026-12-03 14:00:00

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0024_self_service'
down_revision = '0023_incident_links'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
EMAIL = 'self-service@helpdesk.invalid'


def upgrade():
    op.create_table(
        'recovery_attempts',
        sa.Column('id', ID, primary_key=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('client', sa.String(16), nullable=False),
        sa.Column('guardian_id', ID, sa.ForeignKey('guardians.id'), nullable=True),
        sa.Column('portal_account_id', ID, sa.ForeignKey('portal_accounts.id'), nullable=True),
        sa.Column('school_id', ID, sa.ForeignKey('schools.id'), nullable=True),
        sa.Column('field_results', sa.JSON(), nullable=False),
        sa.Column('incident_id', ID, sa.ForeignKey('incidents.id'), nullable=True),
        sa.Column('locked_guardian_ids', sa.JSON(), nullable=True),
        sa.Column('notice_sent_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_recovery_attempts_at', 'recovery_attempts', ['at'])
    op.create_index('ix_recovery_attempts_guardian_id', 'recovery_attempts', ['guardian_id'])
    op.create_index('ix_recovery_attempts_incident_id', 'recovery_attempts', ['incident_id'])
    # Inactive and without a password: it files incidents, it never signs in.
    users = sa.table('users', sa.column('email', sa.String), sa.column('display_name', sa.String),
                     sa.column('role', sa.String), sa.column('active', sa.Boolean),
                     sa.column('created_at', sa.DateTime(timezone=True)),
                     sa.column('failed_sign_ins', sa.Integer),
                     sa.column('session_version', sa.Integer))
    op.bulk_insert(users, [{'email': EMAIL, 'display_name': 'Self-service recovery',
                            'role': 'self_service', 'active': False,
                            'created_at': datetime.now(timezone.utc), 'failed_sign_ins': 0,
                            'session_version': 0}])


def downgrade():
    op.execute(sa.text("DELETE FROM users WHERE email = :email").bindparams(email=EMAIL))
    op.drop_index('ix_recovery_attempts_incident_id', 'recovery_attempts')
    op.drop_index('ix_recovery_attempts_guardian_id', 'recovery_attempts')
    op.drop_index('ix_recovery_attempts_at', 'recovery_attempts')
    op.drop_table('recovery_attempts')
