"""Verified email addresses, where each sign-in came from, and emails that belong to no org.

`users.email_verified_at`: an account sees and accepts invitations addressed to it only once the
owner of the address proved it. Accounts that exist when this runs are taken as verified, at their
creation time. They were created under the earlier rules, when signing up was the only proof there
was; marking them unverified would hide every pending invitation of a working install and make each
of its people click a link before the next one, with nothing gained against an account that was
already squatted (its squatter could have joined already: an operator who fears that reviews the
orgs' members, or sets the column back to NULL for the accounts in doubt, and they verify again).
Accounts created from now on start unverified.

`auth_tokens.address` and `.user_agent`: what the owner's list of sessions shows; NULL for the
sign-ins made before.

`email_jobs.org_id` may be NULL: an account's own emails (verification, password reset, "you
already have an account", "sign-ins were refused") name no org. Row-level security (0004) needs no
change: its policy shows such a row only to a transaction that opted in to all orgs, which is what
the account-level writers and the notifier worker use; an org's transaction never sees them.
SQLite rebuilds the table for that (it has no triggers to lose).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a rebuild of `users` would drop its triggers (0005, 0006) on SQLite.
    op.add_column('users', sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
    op.execute('UPDATE users SET email_verified_at = created_at')
    op.add_column('auth_tokens', sa.Column('address', sa.String(length=45), nullable=True))
    op.add_column('auth_tokens', sa.Column('user_agent', sa.String(length=200), nullable=True))
    with op.batch_alter_table('email_jobs') as batch_op:
        batch_op.alter_column('org_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True)


def downgrade() -> None:
    op.execute('DELETE FROM email_jobs WHERE org_id IS NULL')
    with op.batch_alter_table('email_jobs') as batch_op:
        batch_op.alter_column('org_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False)
    op.drop_column('auth_tokens', 'user_agent')
    op.drop_column('auth_tokens', 'address')
    op.drop_column('users', 'email_verified_at')
