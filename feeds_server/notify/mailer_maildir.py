"""Mail written as `.eml` files into a folder: the default with no SMTP server configured."""

from __future__ import annotations

import asyncio
import os
import re
import time
from email.message import Message
from pathlib import Path


class MaildirMailer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: Message) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: Message) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        msg_id = re.sub(r"[^A-Za-z0-9._-]", "_", str(message.get("Message-ID", "")).strip("<>")) or "message"
        final = self.folder / f"{time.time_ns()}-{msg_id}.eml"
        tmp = final.with_suffix(".tmp")
        # Write then rename, so a reader of the folder never sees half a message.
        tmp.write_bytes(bytes(message))
        os.replace(tmp, final)
