"""queue members: agents see and work the incidents of their queues

Revision ID: 0005_queue_members
Revises: 0004_sla_plans
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_queue_members"
down_revision = "0004_sla_plans"
branch_labels = None
depends_on = None


def upgrade():
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "queue_members",
        sa.Column("queue_id", id_type, nullable=False),
        sa.Column("user_id", id_type, nullable=False),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"],
                                name=op.f("fk_queue_members_queue_id_queues")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_queue_members_user_id_users")),
        sa.PrimaryKeyConstraint("queue_id", "user_id", name=op.f("pk_queue_members")),
    )
    op.create_index(op.f("ix_queue_members_user_id"), "queue_members", ["user_id"])


def downgrade():
    op.drop_index(op.f("ix_queue_members_user_id"), table_name="queue_members")
    op.drop_table("queue_members")
