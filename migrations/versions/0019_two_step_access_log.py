"""Two-step sign-in (a sealed TOTP secret, hashed recovery codes) and the access log

The access log says who read whose records and who changed whose sign-in; like the
incident trail it is append-only, enforced by the database.

Revision ID: 0019_two_step_access_log
Revises: 0018_token_scope
Create Date: 2026-12-02 15:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0019_two_step_access_log'
down_revision = '0018_token_scope'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('totp_sealed', sa.String(255), nullable=True))
        batch.add_column(sa.Column('totp_enrolled_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.create_table(
        'recovery_codes',
        sa.Column('id', ID, primary_key=True),
        sa.Column('user_id', ID, sa.ForeignKey('users.id'), nullable=False),
        sa.Column('code_digest', sa.String(64), nullable=False, unique=True),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_recovery_codes_user_id', 'recovery_codes', ['user_id'])
    op.create_table(
        'access_log',
        sa.Column('id', ID, primary_key=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor_id', ID, sa.ForeignKey('users.id'), nullable=True),
        sa.Column('action', sa.String(32), nullable=False),
        sa.Column('subject', sa.String(300), nullable=False),
        sa.Column('incident_id', ID, sa.ForeignKey('incidents.id'), nullable=True),
        sa.Column('data', sa.JSON(), nullable=False),
    )
    op.create_index('ix_access_log_at', 'access_log', ['at'])
    op.create_index('ix_access_log_subject', 'access_log', ['subject'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION access_log_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'access_log is append-only';
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE "
                   "ON access_log FOR EACH ROW EXECUTE FUNCTION access_log_append_only()")
    else:
        for when in ('UPDATE', 'DELETE'):
            op.execute(f"CREATE TRIGGER access_log_no_{when.lower()} BEFORE {when} ON "
                       "access_log BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER access_log_append_only ON access_log")
        op.execute("DROP FUNCTION access_log_append_only()")
    op.drop_table('access_log')
    op.drop_table('recovery_codes')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('totp_last_step')
        batch.drop_column('totp_enrolled_at')
        batch.drop_column('totp_sealed')
