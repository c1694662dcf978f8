"""Students' own email on file, for notices of what was done to their accounts

Revision ID: 0016_student_email
Revises: 0015_token_expiry
Create Date: 2026-12-02 07:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0016_student_email'
down_revision = '0015_token_expiry'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('students') as batch:
        batch.add_column(sa.Column('email', sa.String(length=320), nullable=True))


def downgrade():
    with op.batch_alter_table('students') as batch:
        batch.drop_column('email')
