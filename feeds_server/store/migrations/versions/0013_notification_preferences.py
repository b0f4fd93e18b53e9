"""Notifications people steer: preferences per kind and channel, web push, digests, mutes, reasons,
field-level follows, merged record bursts and dormancy notices.

`notification_settings` gains the person's choices in one org: `channels` (overrides of the default
on/off for each kind and channel, `{"kind": {"channel": bool}}`; absent = default), `snooze_until`,
quiet hours (`quiet_start_minute`, `quiet_end_minute`: minutes after local midnight, both or neither),
`time_zone` (NULL: the org's), the digest (`digest` off | daily | weekly, at `digest_hour` on
`digest_weekday` for weekly, Monday = 0; `digest_sent_until` is the end of the last period queued,
`digest_due_at` when the next one falls due: NULL until the scheduler has seen the choice),
`dormant_days` (NULL: no dormancy notices; `dormant_since`: when it was turned on or last changed,
only records going quiet after that are told) and `record_merge_seconds` (bursts of changes to one
record notify once per window).

`push_subscriptions`: a browser's Web Push subscription (RFC 8030/8291) for one person in one org;
one row per endpoint and org (`endpoint_hash`, SHA-256 of the URL): a browser re-subscribed by
someone else stops receiving the first person's pushes. `push_jobs`: the push outbox, one row per
notification and subscription (a unique index: never queued twice). `presence`: which people have
a live connection, kept by each node (`node`), so pushes go only to those who are away.

`mutes`: a person mutes a record, a group or a post's comment thread. `dormancy_notices`: one per
record, follower and crossing (the record's `last_activity_at` names the crossing).

`notifications.reason` says why the person got it (structured); `record_id` and `updated_at` let a
burst of changes to one record merge into one notification. `follows.rule_id` names the auto-follow
rule behind a follow by rule; `follows.fields` / `auto_follow_rules.fields` name the fields a follow
cares about (NULL: every field). `email_jobs.dedupe_key` is unique: a digest is queued once per
person and period.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
When = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), 'postgresql')

# The org-owned tables this revision adds (tests/abuse/test_row_level_security.py reads this name).
ORG_TABLES_ADDED = ('push_subscriptions', 'push_jobs', 'presence', 'mutes', 'dormancy_notices')
POLICY = (
    "org_id = nullif(current_setting('feeds.org_id', true), '')::bigint "
    "OR current_setting('feeds.all_orgs', true) = 'on'"
)


def upgrade() -> None:
    # Plain ADD / DROP COLUMN throughout: a rebuild would drop the tables' triggers on SQLite (0005).
    for column in (
        sa.Column('channels', Json, nullable=False, server_default=sa.text("'{}'")),
        sa.Column('snooze_until', When, nullable=True),
        sa.Column('quiet_start_minute', sa.Integer(), nullable=True),
        sa.Column('quiet_end_minute', sa.Integer(), nullable=True),
        sa.Column('time_zone', sa.String(64), nullable=True),
        sa.Column('digest', sa.String(8), nullable=False, server_default='off'),
        sa.Column('digest_hour', sa.Integer(), nullable=False, server_default='8'),
        sa.Column('digest_weekday', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('digest_sent_until', When, nullable=True),
        sa.Column('digest_due_at', When, nullable=True),
        sa.Column('dormant_days', sa.Integer(), nullable=True),
        sa.Column('dormant_since', When, nullable=True),
        sa.Column('record_merge_seconds', sa.Integer(), nullable=False, server_default='60'),
    ):
        op.add_column('notification_settings', column)
    # The digest scheduler's and the dormancy step's one query each: only rows that chose them.
    op.create_index(
        'ix_notification_settings_digest_due', 'notification_settings', ['digest_due_at'],
        postgresql_where=sa.text("digest <> 'off'"), sqlite_where=sa.text("digest <> 'off'"),
    )
    op.create_index(
        'ix_notification_settings_dormant', 'notification_settings', ['org_id', 'dormant_days'],
        postgresql_where=sa.text('dormant_days IS NOT NULL'), sqlite_where=sa.text('dormant_days IS NOT NULL'),
    )
    # Whether anyone in an org chose group posts (off by default): the post writer asks per batch.
    op.create_index(
        'ix_notification_settings_group_post', 'notification_settings', ['org_id'],
        postgresql_where=sa.text("channels ? 'group_post'"), sqlite_where=sa.text("channels LIKE '%\"group_post\"%'"),
    )
    op.add_column('notifications', sa.Column('reason', Json, nullable=True))
    op.add_column('notifications', sa.Column('record_id', BigId, nullable=True))
    op.add_column('notifications', sa.Column('updated_at', When, nullable=True))
    op.create_index(
        'ix_notifications_record', 'notifications', ['org_id', 'user_id', 'record_id', 'id'],
        postgresql_where=sa.text('record_id IS NOT NULL'), sqlite_where=sa.text('record_id IS NOT NULL'),
    )
    op.add_column('follows', sa.Column('rule_id', BigId, nullable=True))
    op.add_column('follows', sa.Column('fields', Json, nullable=True))
    op.add_column('auto_follow_rules', sa.Column('fields', Json, nullable=True))
    op.add_column('email_jobs', sa.Column('dedupe_key', sa.String(128), nullable=True))
    op.create_index('uq_email_jobs_dedupe_key', 'email_jobs', ['dedupe_key'], unique=True)

    op.create_table(
        'push_subscriptions',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('user_id', BigId, sa.ForeignKey('users.id', name='fk_push_subscriptions_user_id_users', ondelete='CASCADE'), nullable=False),
        sa.Column('endpoint', sa.Text(), nullable=False),
        sa.Column('endpoint_hash', sa.String(64), nullable=False),
        sa.Column('p256dh', sa.String(128), nullable=False),
        sa.Column('auth', sa.String(64), nullable=False),
        sa.Column('user_agent', sa.String(200), nullable=True),
        sa.Column('created_at', When, nullable=False),
        sa.Column('last_sent_at', When, nullable=True),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_push_subscriptions_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_push_subscriptions'),
    )
    op.create_index('uq_push_subscriptions_endpoint', 'push_subscriptions', ['org_id', 'endpoint_hash'], unique=True)
    op.create_index('ix_push_subscriptions_user', 'push_subscriptions', ['org_id', 'user_id'])

    op.create_table(
        'push_jobs',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('user_id', BigId, sa.ForeignKey('users.id', name='fk_push_jobs_user_id_users', ondelete='CASCADE'), nullable=False),
        sa.Column('subscription_id', BigId, sa.ForeignKey('push_subscriptions.id', name='fk_push_jobs_subscription_id_push_subscriptions', ondelete='CASCADE'), nullable=False),
        sa.Column('notification_id', BigId, nullable=True),
        sa.Column('payload', Json, nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', When, nullable=False),
        sa.Column('lease_until', When, nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', When, nullable=False),
        sa.Column('sent_at', When, nullable=True),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_push_jobs_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_push_jobs'),
    )
    op.create_index('ix_push_jobs_due', 'push_jobs', ['status', 'next_attempt_at'])
    op.create_index('ix_push_jobs_user', 'push_jobs', ['org_id', 'user_id', 'status'])
    op.create_index('ix_push_jobs_subscription_id', 'push_jobs', ['subscription_id'])
    op.create_index(
        'uq_push_jobs_notification', 'push_jobs', ['org_id', 'notification_id', 'subscription_id'], unique=True,
        postgresql_where=sa.text('notification_id IS NOT NULL'), sqlite_where=sa.text('notification_id IS NOT NULL'),
    )

    op.create_table(
        'presence',
        sa.Column('user_id', BigId, nullable=False),
        sa.Column('node', sa.String(64), nullable=False),
        sa.Column('live_until', When, nullable=False),
        sa.Column('org_id', BigId, nullable=False),
        sa.PrimaryKeyConstraint('org_id', 'user_id', 'node', name='pk_presence'),
    )

    op.create_table(
        'mutes',
        sa.Column('user_id', BigId, sa.ForeignKey('users.id', name='fk_mutes_user_id_users', ondelete='CASCADE'), nullable=False),
        sa.Column('target_kind', sa.String(8), nullable=False),
        sa.Column('target_id', BigId, nullable=False),
        sa.Column('created_at', When, nullable=False),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_mutes_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('org_id', 'user_id', 'target_kind', 'target_id', name='pk_mutes'),
    )

    op.create_table(
        'dormancy_notices',
        sa.Column('record_id', BigId, sa.ForeignKey('records.id', name='fk_dormancy_notices_record_id_records', ondelete='CASCADE'), nullable=False),
        sa.Column('user_id', BigId, sa.ForeignKey('users.id', name='fk_dormancy_notices_user_id_users', ondelete='CASCADE'), nullable=False),
        sa.Column('last_activity_at', When, nullable=False),
        sa.Column('created_at', When, nullable=False),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_dormancy_notices_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('org_id', 'record_id', 'user_id', 'last_activity_at', name='pk_dormancy_notices'),
    )
    op.create_index('ix_dormancy_notices_user', 'dormancy_notices', ['org_id', 'user_id', 'created_at'])

    if op.get_context().dialect.name == 'postgresql':
        for table in ORG_TABLES_ADDED:
            op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            op.execute(f'CREATE POLICY org_scope ON "{table}" USING ({POLICY}) WITH CHECK ({POLICY})')


def downgrade() -> None:
    for table in reversed(ORG_TABLES_ADDED):
        op.drop_table(table)
    op.drop_index('uq_email_jobs_dedupe_key', 'email_jobs')
    op.drop_column('email_jobs', 'dedupe_key')
    op.drop_column('auto_follow_rules', 'fields')
    op.drop_column('follows', 'fields')
    op.drop_column('follows', 'rule_id')
    op.drop_index('ix_notifications_record', 'notifications')
    for name in ('updated_at', 'record_id', 'reason'):
        op.drop_column('notifications', name)
    op.drop_index('ix_notification_settings_group_post', 'notification_settings')
    op.drop_index('ix_notification_settings_dormant', 'notification_settings')
    op.drop_index('ix_notification_settings_digest_due', 'notification_settings')
    for name in ('record_merge_seconds', 'dormant_since', 'dormant_days', 'digest_due_at', 'digest_sent_until', 'digest_weekday', 'digest_hour', 'digest',
                 'time_zone', 'quiet_end_minute', 'quiet_start_minute', 'snooze_until', 'channels'):
        op.drop_column('notification_settings', name)
