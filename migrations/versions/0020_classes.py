"""Classes and enrolments from the roster (OneRoster classes.csv and enrollments.csv)

Revision ID: 0020_classes
Revises: 0019_two_step_access_log
Create Date: 2026-12-02 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0020_classes'
down_revision = '0019_two_step_access_log'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'classes',
        sa.Column('id', ID, primary_key=True),
        sa.Column('sourced_id', sa.String(255), nullable=False, unique=True),
        sa.Column('school_id', ID, sa.ForeignKey('schools.id'), nullable=False),
        sa.Column('title', sa.String(255), nullable=False),
        sa.Column('class_code', sa.String(64), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_classes_school_id', 'classes', ['school_id'])
    op.create_table(
        'enrollments',
        sa.Column('id', ID, primary_key=True),
        sa.Column('sourced_id', sa.String(255), nullable=False, unique=True),
        sa.Column('class_id', ID, sa.ForeignKey('classes.id'), nullable=False),
        sa.Column('role', sa.String(16), nullable=False),
        sa.Column('staff_id', ID, sa.ForeignKey('staff.id'), nullable=True),
        sa.Column('student_id', ID, sa.ForeignKey('students.id'), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_enrollments_class_role', 'enrollments', ['class_id', 'role'])
    op.create_index('ix_enrollments_staff_id', 'enrollments', ['staff_id'])
    op.create_index('ix_enrollments_student_id', 'enrollments', ['student_id'])


def downgrade():
    op.drop_table('enrollments')
    op.drop_table('classes')
