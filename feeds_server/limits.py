"""Every number of the product spec, in one place.

Validation, tests and docs import these names; no other module writes the literal.
"""

from datetime import timedelta

# F-ORG-1 / F-ORG-2: memberships and created orgs per login.
MAX_ORGS_PER_USER = 10
MAX_ORGS_CREATED_PER_USER = 5

# F-ORG-5: how long an invitation can be answered.
INVITATION_TTL = timedelta(days=7)

# F-ORG-3: length of the enterprise trial of a new org.
TRIAL_LENGTH = timedelta(days=15)

# F-POST-2: a message must be shorter than 32,000 code points.
MAX_POST_CHARS = 31_999

# F-POST-9: the longest edit window an org may set, in seconds (ten years; null is unlimited).
MAX_EDIT_WINDOW_SECONDS = 10 * 365 * 24 * 3600

# F-POST-7: attachments per message.
MAX_FILES_PER_POST = 5
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES_TOTAL_BYTES = 20 * 1024 * 1024

# F-FOLLOW-6: auto-follow rules per module per creator.
MAX_RULES_PER_MODULE_PER_CREATOR = 5

# F-FOLLOW-8: dormant-record window in days, inclusive.
MIN_DORMANT_DAYS = 1
MAX_DORMANT_DAYS = 180
# Dormancy notices: how often the notifier looks for records that crossed a person's threshold, and
# at most how many notices one org gets per look (the rest follow at the next one).
DORMANCY_STEP_SECONDS = 300
DORMANCY_NOTICES_PER_STEP = 1_000

# Digests: how often the notifier looks for due ones, how many people it schedules per transaction,
# and at most how many records, groups and dormant records one digest lists (then "and N more").
DIGEST_SCHEDULE_SECONDS = 60
DIGEST_SCHEDULE_BATCH = 500
DIGEST_MAX_ENTRIES = 20

# Record events accepted in one integration batch (F-FOLLOW-1).
MAX_RECORD_EVENTS_PER_BATCH = 500

# Pagination: default and cap of every listing.
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

# Search: the query's length and its words and phrase words, each a condition of the index scan.
MAX_SEARCH_QUERY_CHARS = 500
MAX_SEARCH_WORDS = 16
# Search ranks the newest matches a reader may see, this many at a time (a window); older matches
# come in the next window, reached through the same cursor.
SEARCH_RANK_WINDOW = 1_000

# Plain text fields that are not messages.
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_SLUG_CHARS = 63
MIN_SLUG_CHARS = 3
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1_024
MAX_EMAIL_CHARS = 254

# Account links sent by email (actions/account_links.py): how long each can be used.
EMAIL_VERIFICATION_TTL = timedelta(days=3)
PASSWORD_RESET_TTL = timedelta(minutes=30)
# A sign-in's user agent as kept for the list of sessions (control characters removed).
MAX_USER_AGENT_CHARS = 200
MAX_ADDRESS_CHARS = 45

# Posts an org's writer commits in one transaction at most (actions/post_writer.py).
POST_BATCH_MAX = 200

# Mentions in one message (a sanity cap; the spec sets none).
MAX_MENTIONS_PER_POST = 100

# Posts pinned at the top of the org feed, and at the top of each group's feed.
MAX_PINS_PER_PLACE = 5

# Reactions: distinct emojis on one item (a 21st is refused), the longest emoji sequence taken (in
# code points, the width of `reactions.emoji`), and the window in which a burst of reaction changes
# on one org's items reaches clients as one publication per item (realtime/hub.py).
MAX_REACTIONS_PER_ITEM = 20
MAX_REACTION_EMOJI_CHARS = 32
REACTION_MERGE_SECONDS = 0.25

# Request bodies that are JSON (uploads have their own limits above).
MAX_JSON_BODY_BYTES = 1024 * 1024

# A request's line and headers together (api/http_wire.py): 431 above. The web client and the SDKs
# send well under 2 KiB; nginx's default buffers are 8 KiB.
MAX_REQUEST_HEAD_BYTES = 16 * 1024
# Multipart framing and part headers allowed on top of the files and the message in one upload.
UPLOAD_ENVELOPE_BYTES = 64 * 1024
# Seconds a client has to send a request's head, and then its body (uploads: `UPLOAD_TIMEOUT`).
HEADER_TIMEOUT_SECONDS = 10
BODY_TIMEOUT_SECONDS = 10
UPLOAD_TIMEOUT_SECONDS = 120

# Real time (F-RT-*): inbound frame cap, send queue, history kept per channel.
MAX_WS_FRAME_BYTES = 64 * 1024
WS_SEND_QUEUE_FRAMES = 1_024
# A client whose queued frames have waited this long for its socket is closed as slow (3008),
# however few they are: a client that stopped reading is let go within seconds, not when its queue fills.
WS_SEND_STALL_SECONDS = 5.0
HISTORY_MIN_AGE = timedelta(days=7)
HISTORY_MIN_PUBLICATIONS = 10_000
# Messages (events, control) a node publishes to the broker in one go: one Redis round trip.
BROKER_PUBLISH_BATCH = 256

# Notifications (F-NOTIF-*): default mention batching window, and email retries.
DEFAULT_MENTION_BATCH_SECONDS = 60
MAX_MENTION_BATCH_SECONDS = 24 * 3600
# Preferences: a burst of record changes merges into one notification for up to this long; snooze
# at most this far ahead; the same person reacting again this soon notifies once; mutes per member.
MAX_RECORD_MERGE_SECONDS = 3600
MAX_SNOOZE_DAYS = 365
REACTION_RENOTIFY_SECONDS = 60
MAX_MUTES_PER_MEMBER = 1_000
MAX_TIME_ZONE_CHARS = 64
EMAIL_MAX_ATTEMPTS = 12
EMAIL_RETRY_BASE_SECONDS = 2.0
EMAIL_RETRY_MAX_SECONDS = 3600.0

# Web Push (RFC 8030, keys of RFC 8291, VAPID of RFC 8292): an endpoint URL and its keys as the
# browser hands them over (a P-256 point uncompressed, a 16-byte auth secret), browsers per person
# and org, and the sender's bounds: a push service answers in a few seconds with a short body;
# retries back off like emails. The payload stays well under the 4 KiB a push service must accept
# (RFC 8030 section 7.2) once encrypted. A push not delivered within its TTL is not worth showing.
MAX_PUSH_ENDPOINT_CHARS = 2_000
MAX_PUSH_SUBSCRIPTIONS_PER_MEMBER = 10
PUSH_P256DH_BYTES = 65
PUSH_AUTH_BYTES = 16
PUSH_MAX_PAYLOAD_BYTES = 3_000
PUSH_TTL_SECONDS = 24 * 3600
PUSH_TIMEOUT_SECONDS = 5.0  # the whole exchange with a push service, connect to last byte
PUSH_MAX_RESPONSE_BYTES = 4_096
PUSH_MAX_ATTEMPTS = 12
PUSH_RETRY_BASE_SECONDS = 2.0
PUSH_RETRY_MAX_SECONDS = 3600.0
PUSH_CLAIM_BATCH = 100
PUSH_CONCURRENCY = 64
# Pushes in flight to one push service origin: one that answers slowly (or never) holds at most these
# slots. More of its claimed pushes wait in the worker for a slot, up to PUSH_ORIGIN_WAIT_SECONDS;
# those still waiting then are given back, due again after PUSH_ORIGIN_BUSY_SECONDS (not counted as
# an attempt), so the claim's other slots go to pushes of other push services.
PUSH_PER_ORIGIN_CONCURRENCY = 16
PUSH_ORIGIN_WAIT_SECONDS = 1.0
PUSH_ORIGIN_BUSY_SECONDS = 2.0
# How long a VAPID token is valid (RFC 8292 section 2: at most 24 hours).
VAPID_TOKEN_SECONDS = 12 * 3600
# Presence (who has a live connection, so pushes go only to people away): a node writes new
# connections within PRESENCE_FLUSH_SECONDS and renews its rows every PRESENCE_HEARTBEAT_SECONDS;
# a row lives three heartbeats, so a node that died stops counting soon after.
PRESENCE_FLUSH_SECONDS = 1.0
PRESENCE_HEARTBEAT_SECONDS = 20.0
PRESENCE_TTL_SECONDS = 3 * PRESENCE_HEARTBEAT_SECONDS

# Records (F-FOLLOW-*): sizes of what the CRM sends, fields kept per record, key fields on a
# business card (F-FEED-4).
MAX_MODULE_CHARS = 64
MAX_CRM_ID_CHARS = 128
MAX_FIELD_NAME_CHARS = 100
MAX_RECORD_FIELDS = 200
BUSINESS_CARD_FIELDS = 5
# Field-level follows: the fields a follow (or a rule, for its follows) may name.
MAX_FOLLOW_FIELDS = 50
# Merged bursts: a record notification keeps the latest changes merged into it (its count goes on),
# each naming at most this many fields, string values cut to this length (the item has them all).
MAX_MERGED_CHANGES = 20
MAX_CHANGE_FIELDS_NOTED = 10
MAX_CHANGE_VALUE_CHARS = 200
DEFAULT_RECORD_MERGE_SECONDS = 60

# Auto-follow rule preview: matches shown, and how many of the module's most recently active
# records are looked at.
RULE_PREVIEW_RECORDS = 50
RULE_PREVIEW_SCAN = 10_000

# Notes back to the CRM (F-FOLLOW-10): retries with exponential backoff and jitter, from 2 s up to
# one hour between attempts; 100 attempts cover about three days of CRM outage. Failed deliveries
# stay in the outbox and an admin can send them again.
MAX_WEBHOOK_URL_CHARS = 2_000
WEBHOOK_MAX_ATTEMPTS = 100
WEBHOOK_RETRY_BASE_SECONDS = 2.0
WEBHOOK_RETRY_MAX_SECONDS = 3600.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
WEBHOOK_LEASE_SECONDS = 60
WEBHOOK_CLAIM_BATCH = 50
# How old a signed call may be when the CRM checks it (docs/records.md); the sender stamps it.
WEBHOOK_SIGNATURE_MAX_AGE_SECONDS = 300

# File previews (notify/previews.py): thumbnails fit in a square of this side; an image whose
# header claims more pixels is refused before any decoding (a decompression bomb); each file is
# decoded in a child process killed past the timeout, with its address space capped. A claim takes
# few jobs, so that its lease outlives them all at PREVIEW_CONCURRENCY files at a time.
PREVIEW_MAX_SIDE = 320
PREVIEW_MAX_PIXELS = 50_000_000
PREVIEW_TIMEOUT_SECONDS = 10.0
PREVIEW_MEMORY_BYTES = 1024 * 1024 * 1024
PREVIEW_CONCURRENCY = 2
PREVIEW_CLAIM_BATCH = 4
PREVIEW_LEASE_SECONDS = 120
PREVIEW_MAX_ATTEMPTS = 5
PREVIEW_RETRY_BASE_SECONDS = 2.0
PREVIEW_RETRY_MAX_SECONDS = 600.0
# How long a browser may keep a thumbnail it fetched (it never changes under its URL).
PREVIEW_CACHE_SECONDS = 3600

# Rate limits (docs/operations.md, "Rate limits"), each (requests, seconds): a burst of `requests`
# at once, then one more every seconds/requests; `seconds` without a request restores the whole
# burst. Posting counts posts, comments and messages together; an upload is a post with files.
# Sign-ins are also counted per (target account, address), so guesses from one address stop there
# without locking the owner out from theirs, and per target account under a ceiling far above that,
# so one account cannot be guessed at from many addresses. Sign-ups are counted per address.
# Account emails (verification, password reset, "you already have an account") per target account.
RATE_POSTS_PER_USER = (60, 60)
RATE_POSTS_PER_IP = (600, 60)
RATE_UPLOADS_PER_USER = (100, 600)
RATE_UPLOADS_PER_IP = (1_000, 600)
RATE_SIGNINS_PER_IP = (60, 60)
RATE_SIGNINS_PER_ACCOUNT_ADDRESS = (10, 900)
RATE_SIGNINS_PER_ACCOUNT = (100, 900)
RATE_SIGNUPS_PER_IP = (20, 3600)
RATE_ACCOUNT_EMAILS = (5, 3600)
# Reaction toggles of one user (each is an event): far above any person's clicking.
RATE_REACTIONS_PER_USER = (120, 60)
# Open WebSocket connections per login, over every org and node (0: no cap).
MAX_WS_CONNECTIONS_PER_USER = 20
