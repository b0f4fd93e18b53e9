"""Where attachment bytes live: an interface and the local-folder implementation.

Files are stored under server-generated keys, never under a name a client chose. An upload is
first written to a temporary object and only `commit`ted once the message is stored.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK = 64 * 1024


class FileStore(Protocol):
    async def open_temp(self) -> "TempFile": ...
    async def read(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


class TempFile:
    """A file being uploaded: written chunk by chunk, then committed under its final key or discarded."""

    def __init__(self, folder: Path) -> None:
        self.key = secrets.token_hex(16)
        self.path = folder / "tmp" / f"{self.key}.part"
        self.final = folder / self.key[:2] / self.key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in commit/discard

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self) -> str:
        self._fh.close()
        self.final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, self.final)
        return self.key

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)


class LocalFileStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def open_temp(self) -> TempFile:
        return await asyncio.to_thread(TempFile, self.folder)

    def _path(self, key: str) -> Path:
        if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
            raise FileNotFoundError(key)
        return self.folder / key[:2] / key

    async def read(self, key: str) -> AsyncIterator[bytes]:
        fh = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk
        finally:
            fh.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()
