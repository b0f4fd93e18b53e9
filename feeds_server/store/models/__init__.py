"""Every table of the schema. Importing this package fills `Base.metadata` for Alembic."""

from feeds_server.store.models.audit import AuditEntry
from feeds_server.store.models.events import ChannelHistory, Event, EventChannel
from feeds_server.store.models.feed import (
    Attachment,
    Comment,
    Group,
    GroupSource,
    IdempotencyKey,
    ItemVersion,
    Mention,
    Post,
    PostAudience,
    PreviewJob,
)
from feeds_server.store.models.marks import Pin, Reaction, SavedItem
from feeds_server.store.models.search import SearchItem
from feeds_server.store.models.identity import AuthToken, User
from feeds_server.store.models.notify import (
    DormancyNotice,
    EmailJob,
    Mute,
    Notification,
    NotificationSettings,
    Presence,
    PushJob,
    PushSubscription,
)
from feeds_server.store.models.records import (
    AutoFollowRule,
    Follow,
    IntegrationWebhook,
    Record,
    RecordEventSeen,
    WebhookDelivery,
)
from feeds_server.store.models.orgs import (
    Integration,
    Invitation,
    Membership,
    Org,
    Profile,
    Role,
    Territory,
    TerritoryMember,
)

__all__ = [
    "AuditEntry",
    "AutoFollowRule",
    "Follow",
    "IntegrationWebhook",
    "Record",
    "RecordEventSeen",
    "WebhookDelivery",
    "Attachment",
    "ChannelHistory",
    "EmailJob",
    "Comment",
    "EventChannel",
    "Group",
    "GroupSource",
    "IdempotencyKey",
    "ItemVersion",
    "Pin",
    "PreviewJob",
    "Reaction",
    "SavedItem",
    "SearchItem",
    "Mention",
    "DormancyNotice",
    "Mute",
    "Notification",
    "NotificationSettings",
    "Presence",
    "PushJob",
    "PushSubscription",
    "Post",
    "PostAudience",
    "AuthToken",
    "Event",
    "Integration",
    "Invitation",
    "Membership",
    "Org",
    "Profile",
    "Role",
    "Territory",
    "TerritoryMember",
    "User",
]
