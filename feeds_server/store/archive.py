"""The org export archive: a ZIP holding a versioned JSON-lines manifest and the attachments' files.

`manifest.jsonl` has one JSON object per line. The first is the header (`"t": "header"`, the format
name and `version`, the org's settings); then one line per row, `"t"` naming its table, in an order
where a row only refers to rows above it; the last is `"t": "end"` with the count of each table, so
a cut-off archive is told from a whole one. Ids are the exporting server's; an import gives new ones.
`files/<attachment id>` holds the bytes of each attachment (never their thumbnails: the importing
server's worker makes them again).

Version 2 added posts' and comments' `edited_at`, their earlier texts (`item_version`), reactions,
saved items, pins and the org's edit window. Version 3 added every notification setting (channels,
snooze, quiet hours, zone, digest, dormancy, merging), follows' `rule_id` and `fields` (rules now come
before follows), rules' `fields`, notifications' `reason`, `record_id` and `updated_at`, mutes
(`mute`) and the dormant records each follower was told of (`dormancy_notice`). Archives of versions
1 and 2 are still read: they simply have none of what came later.

Written and read as streams: neither side holds the org in memory.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

FORMAT = "feeds-server/org-export"
VERSION = 3
# The versions this server imports: each later one only adds tables and fields.
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.jsonl"

# Tables of the manifest, in the order they are written and read.
TABLES = (
    "user", "role", "profile", "territory", "territory_member", "membership", "notification_settings", "group",
    "record", "rule", "follow", "post", "comment", "item_version", "reaction", "saved_item", "pin", "notification",
    "mute", "dormancy_notice",
)


class ArchiveError(Exception):
    """Not an archive this server can read (wrong format or version, cut off, files missing)."""


def file_name(attachment_id: int) -> str:
    return f"files/{attachment_id}"


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


class ArchiveWriter:
    """Files first (`add_file`), then the manifest (`manifest()`): a ZIP has one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)

    async def add_file(self, attachment_id: int, chunks: AsyncIterator[bytes]) -> None:
        with self.zip.open(_entry(file_name(attachment_id)), "w", force_zip64=True) as fh:
            async for chunk in chunks:
                fh.write(chunk)

    def manifest(self) -> "ManifestWriter":
        return ManifestWriter(self.zip.open(_entry(MANIFEST), "w", force_zip64=True))

    def close(self) -> None:
        self.zip.close()


class ManifestWriter:
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.counts: dict[str, int] = {}

    def header(self, **fields: Any) -> None:
        self._line({"t": "header", "format": FORMAT, "version": VERSION, **fields})

    def row(self, table: str, fields: dict[str, Any]) -> None:
        self.counts[table] = self.counts.get(table, 0) + 1
        self._line({"t": table, **fields})

    def end(self) -> None:
        self._line({"t": "end", "counts": self.counts})
        self._fh.close()

    def _line(self, obj: dict[str, Any]) -> None:
        self._fh.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS) + b"\n")


class ArchiveReader:
    def __init__(self, path: Path) -> None:
        try:
            self.zip = zipfile.ZipFile(path, "r")
        except (OSError, zipfile.BadZipFile) as exc:
            raise ArchiveError(f"{path}: not a readable archive ({exc})") from None
        self.names = set(self.zip.namelist())
        if MANIFEST not in self.names:
            raise ArchiveError(f"{path}: no {MANIFEST} in the archive")
        self.header = next(self.lines())
        if self.header.get("t") != "header" or self.header.get("format") != FORMAT:
            raise ArchiveError(f"{path}: not an org export of this server")
        if self.header.get("version") not in READABLE_VERSIONS:
            readable = ", ".join(str(v) for v in READABLE_VERSIONS)
            raise ArchiveError(f"{path}: format version {self.header.get('version')!r}; this server reads versions {readable}")

    def lines(self) -> Iterator[dict[str, Any]]:
        """Every line of the manifest, header and end included, read as a stream."""
        with self.zip.open(MANIFEST) as fh:
            for raw in fh:
                if raw.strip():
                    yield orjson.loads(raw)

    def has_file(self, attachment_id: int) -> bool:
        return file_name(attachment_id) in self.names

    def read_file(self, attachment_id: int, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        with self.zip.open(file_name(attachment_id)) as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def close(self) -> None:
        self.zip.close()
