"""Edited posts and comments with their earlier versions, reactions, saved items, pins, and file
previews made by the worker.

`posts.edited_at`, `comments.edited_at`: when the author last changed the text (NULL: never);
`item_versions` keeps each text an edit replaced, with who replaced it and when, and whether an
admin hid it. `orgs.edit_window_seconds`: NULL (unlimited) for every existing org.

`reactions`: one row per person, item and emoji; a post's own reactions have no comment, so two
partial unique indexes say "one of each", one for posts and one for comments.

`saved_items` (private bookmarks) and `pins` (at most a few per org feed or group, counted by the
server) name a post each.

`attachments.preview_*`, `.width`, `.height`, `.page_count`: the thumbnail the worker makes for an
image or a PDF, and what it learnt of the file; `preview_jobs` is its outbox. Attachments stored
before this revision have no preview (`preview_state` NULL).

Every new table has an `org_id` and row-level security like the others (0004).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
When = sa.DateTime(timezone=True)

# The org-owned tables this revision adds (tests/abuse/test_row_level_security.py reads this name).
ORG_TABLES_ADDED = ('item_versions', 'reactions', 'saved_items', 'pins', 'preview_jobs')
POLICY = (
    "org_id = nullif(current_setting('feeds.org_id', true), '')::bigint "
    "OR current_setting('feeds.all_orgs', true) = 'on'"
)


def upgrade() -> None:
    op.add_column('posts', sa.Column('edited_at', When, nullable=True))
    op.add_column('comments', sa.Column('edited_at', When, nullable=True))
    op.add_column('orgs', sa.Column('edit_window_seconds', sa.Integer(), nullable=True))
    for name, kind in (
        ('preview_state', sa.String(16)), ('preview_key', sa.String(128)), ('preview_width', sa.Integer()),
        ('preview_height', sa.Integer()), ('width', sa.Integer()), ('height', sa.Integer()), ('page_count', sa.Integer()),
    ):
        op.add_column('attachments', sa.Column(name, kind, nullable=True))

    op.create_table(
        'item_versions',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('post_id', BigId, sa.ForeignKey('posts.id', name='fk_item_versions_post_id_posts', ondelete='CASCADE'), nullable=False),
        sa.Column('comment_id', BigId, sa.ForeignKey('comments.id', name='fk_item_versions_comment_id_comments', ondelete='CASCADE'), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('written_at', When, nullable=False),
        sa.Column('replaced_at', When, nullable=False),
        sa.Column('replaced_by_user_id', BigId, sa.ForeignKey('users.id', name='fk_item_versions_replaced_by_user_id_users', ondelete='SET NULL'), nullable=True),
        sa.Column('hidden_at', When, nullable=True),
        sa.Column('hidden_by_user_id', BigId, sa.ForeignKey('users.id', name='fk_item_versions_hidden_by_user_id_users', ondelete='SET NULL'), nullable=True),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_item_versions_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_item_versions'),
    )
    op.create_index('ix_item_versions_org_id', 'item_versions', ['org_id'])
    op.create_index('ix_item_versions_item', 'item_versions', ['org_id', 'post_id', 'comment_id', 'id'])

    op.create_table(
        'reactions',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('post_id', BigId, sa.ForeignKey('posts.id', name='fk_reactions_post_id_posts', ondelete='CASCADE'), nullable=False),
        sa.Column('comment_id', BigId, sa.ForeignKey('comments.id', name='fk_reactions_comment_id_comments', ondelete='CASCADE'), nullable=True),
        sa.Column('user_id', BigId, sa.ForeignKey('users.id', name='fk_reactions_user_id_users', ondelete='CASCADE'), nullable=False),
        sa.Column('emoji', sa.String(32), nullable=False),
        sa.Column('created_at', When, nullable=False),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_reactions_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_reactions'),
    )
    op.create_index('ix_reactions_org_id', 'reactions', ['org_id'])
    op.create_index('ix_reactions_item', 'reactions', ['org_id', 'post_id', 'comment_id'])
    op.create_index(
        'uq_reactions_post', 'reactions', ['org_id', 'post_id', 'user_id', 'emoji'], unique=True,
        postgresql_where=sa.text('comment_id IS NULL'), sqlite_where=sa.text('comment_id IS NULL'),
    )
    op.create_index(
        'uq_reactions_comment', 'reactions', ['org_id', 'comment_id', 'user_id', 'emoji'], unique=True,
        postgresql_where=sa.text('comment_id IS NOT NULL'), sqlite_where=sa.text('comment_id IS NOT NULL'),
    )

    op.create_table(
        'saved_items',
        sa.Column('user_id', BigId, sa.ForeignKey('users.id', name='fk_saved_items_user_id_users', ondelete='CASCADE'), nullable=False),
        sa.Column('post_id', BigId, sa.ForeignKey('posts.id', name='fk_saved_items_post_id_posts', ondelete='CASCADE'), nullable=False),
        sa.Column('created_at', When, nullable=False),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_saved_items_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('org_id', 'user_id', 'post_id', name='pk_saved_items'),
    )
    op.create_index('ix_saved_items_org_id', 'saved_items', ['org_id'])
    op.create_index('ix_saved_items_user', 'saved_items', ['org_id', 'user_id', 'created_at'])

    op.create_table(
        'pins',
        sa.Column('post_id', BigId, sa.ForeignKey('posts.id', name='fk_pins_post_id_posts', ondelete='CASCADE'), nullable=False),
        sa.Column('group_id', BigId, sa.ForeignKey('groups.id', name='fk_pins_group_id_groups', ondelete='CASCADE'), nullable=True),
        sa.Column('pinned_by_user_id', BigId, sa.ForeignKey('users.id', name='fk_pins_pinned_by_user_id_users', ondelete='SET NULL'), nullable=True),
        sa.Column('created_at', When, nullable=False),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_pins_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('org_id', 'post_id', name='pk_pins'),
    )
    op.create_index('ix_pins_org_id', 'pins', ['org_id'])
    op.create_index('ix_pins_place', 'pins', ['org_id', 'group_id', 'created_at'])

    op.create_table(
        'preview_jobs',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('attachment_id', BigId, sa.ForeignKey('attachments.id', name='fk_preview_jobs_attachment_id_attachments', ondelete='CASCADE'), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', When, nullable=False),
        sa.Column('leased_until', When, nullable=True),
        sa.Column('last_error', sa.String(500), nullable=True),
        sa.Column('created_at', When, nullable=False),
        sa.Column('org_id', BigId, sa.ForeignKey('orgs.id', name='fk_preview_jobs_org_id_orgs', ondelete='CASCADE'), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_preview_jobs'),
    )
    op.create_index('ix_preview_jobs_org_id', 'preview_jobs', ['org_id'])
    op.create_index('ix_preview_jobs_attachment_id', 'preview_jobs', ['attachment_id'])
    op.create_index('ix_preview_jobs_due', 'preview_jobs', ['status', 'next_attempt_at'])

    if op.get_context().dialect.name == 'postgresql':
        for table in ORG_TABLES_ADDED:
            op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            op.execute(f'CREATE POLICY org_scope ON "{table}" USING ({POLICY}) WITH CHECK ({POLICY})')


def downgrade() -> None:
    for table in reversed(ORG_TABLES_ADDED):
        op.drop_table(table)
    # Plain DROP COLUMN: a rebuild would drop the triggers of `posts`, `comments` and `orgs` on SQLite (0005).
    for name in ('page_count', 'height', 'width', 'preview_height', 'preview_width', 'preview_key', 'preview_state'):
        op.drop_column('attachments', name)
    op.drop_column('orgs', 'edit_window_seconds')
    op.drop_column('comments', 'edited_at')
    op.drop_column('posts', 'edited_at')
