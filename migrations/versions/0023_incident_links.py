"""Duplicates: incidents linked or merged, and the index filing checks for an open one

Revision ID: 0023_incident_links
Revises: 0022_class_slips
Create Date: 2026-12-03 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0023_incident_links'
down_revision = '0022_class_slips'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UNFINISHED = ("status IN ('new', 'triaged', 'in_progress', 'awaiting_reply', "
              "'awaiting_fulfilment')")


def upgrade():
    op.create_table(
        'incident_links',
        sa.Column('id', ID, primary_key=True),
        sa.Column('incident_id', ID, sa.ForeignKey('incidents.id'), nullable=False),
        sa.Column('other_id', ID, sa.ForeignKey('incidents.id'), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('created_by_id', ID, sa.ForeignKey('users.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('incident_id', 'other_id'),
    )
    op.create_index('ix_incident_links_other_id', 'incident_links', ['other_id'])
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('merged_into_id', ID, nullable=True))
        batch.create_foreign_key('fk_incidents_merged_into', 'incidents', ['merged_into_id'],
                                 ['id'])
    for column in ('portal_account_id', 'guardian_id'):
        op.create_index(f'ix_incidents_unfinished_{column}', 'incidents', [column],
                        postgresql_where=sa.text(UNFINISHED), sqlite_where=sa.text(UNFINISHED))


def downgrade():
    for column in ('portal_account_id', 'guardian_id'):
        op.drop_index(f'ix_incidents_unfinished_{column}', 'incidents')
    with op.batch_alter_table('incidents') as batch:
        batch.drop_constraint('fk_incidents_merged_into', type_='foreignkey')
        batch.drop_column('merged_into_id')
    op.drop_index('ix_incident_links_other_id', 'incident_links')
    op.drop_table('incident_links')
