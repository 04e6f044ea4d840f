"""The first schema: users, sessions, API tokens, episodes, assignments, marks, plays, settings.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _user_fk(index: bool = True) -> sa.Column:
    return sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                     nullable=False, index=index)


def upgrade() -> None:
    op.create_table("users",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(64), nullable=False, unique=True),
                    sa.Column("role", sa.String(16), nullable=False),
                    sa.Column("password_hash", sa.String(256), nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("sessions",
                    sa.Column("token_hash", sa.String(64), primary_key=True),
                    _user_fk(),
                    sa.Column("csrf_token", sa.String(64), nullable=False),
                    sa.Column("expires_at", sa.Float, nullable=False))
    op.create_table("api_tokens",
                    sa.Column("token_hash", sa.String(64), primary_key=True),
                    _user_fk(),
                    sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("episodes",
                    sa.Column("id", sa.String(64), primary_key=True),
                    sa.Column("level", sa.String(128), nullable=False),
                    sa.Column("seed", sa.BigInteger, nullable=False),
                    sa.Column("mission", sa.Text, nullable=False),
                    sa.Column("actions", sa.JSON, nullable=False),
                    sa.Column("rewards", sa.JSON, nullable=False),
                    sa.Column("terminated", sa.Boolean, nullable=False),
                    sa.Column("truncated", sa.Boolean, nullable=False),
                    sa.Column("source", sa.Text, nullable=False),
                    sa.Column("length", sa.Integer, nullable=False),
                    sa.Column("frames", sa.JSON, nullable=True),
                    sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("assignments",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("episode_id", sa.String(64),
                              sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False, index=True),
                    _user_fk(),
                    sa.Column("leased_at", sa.Float, nullable=False),
                    sa.Column("lease_expires", sa.Float, nullable=False),
                    sa.Column("done", sa.Boolean, nullable=False),
                    sa.UniqueConstraint("episode_id", "user_id"))
    op.create_table("marks",
                    sa.Column("uuid", sa.String(36), primary_key=True),
                    sa.Column("episode_id", sa.String(64),
                              sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False, index=True),
                    _user_fk(),
                    sa.Column("step", sa.Integer, nullable=False),
                    sa.Column("kind", sa.String(16), nullable=False),
                    sa.Column("comment", sa.Text, nullable=False),
                    sa.Column("deleted", sa.Boolean, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("updated_at", sa.Float, nullable=False))
    op.create_table("plays",
                    sa.Column("id", sa.String(32), primary_key=True),
                    _user_fk(),
                    sa.Column("level", sa.String(128), nullable=False),
                    sa.Column("seed", sa.BigInteger, nullable=False),
                    sa.Column("mission", sa.Text, nullable=False),
                    sa.Column("actions", sa.JSON, nullable=False),
                    sa.Column("rewards", sa.JSON, nullable=False),
                    sa.Column("frames", sa.JSON, nullable=False),
                    sa.Column("last_seq", sa.Integer, nullable=False),
                    sa.Column("status", sa.String(16), nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("updated_at", sa.Float, nullable=False))
    op.create_table("settings",
                    sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))


def downgrade() -> None:
    for table in ("settings", "plays", "marks", "assignments", "episodes", "api_tokens",
                  "sessions", "users"):
        op.drop_table(table)
