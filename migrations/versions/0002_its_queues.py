"""the ITS queues the support procedure routes to

Revision ID: 0002_its_queues
Revises: e5e9e4f878de
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_its_queues"
down_revision = "e5e9e4f878de"
branch_labels = None
depends_on = None

# Written out here, not imported: a migration must not change when the code does.
QUEUES = [
    {"slug": "its-service-desk", "name": "ITS Service Desk", "active": True},
    {"slug": "its-identity", "name": "ITS Identity & Access", "active": True},
    {"slug": "its-student-systems", "name": "ITS Student Systems", "active": True},
]


def upgrade():
    queues = sa.table(
        "queues", sa.column("slug", sa.String), sa.column("name", sa.String),
        sa.column("active", sa.Boolean),
    )
    op.bulk_insert(queues, QUEUES)


def downgrade():
    op.execute(
        "DELETE FROM queues WHERE slug IN ('its-service-desk', 'its-identity', "
        "'its-student-systems')"
    )
