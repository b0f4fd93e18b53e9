"""File previews: thumbnails made by the worker, bounded in pixels and time, served like the file (F-POST-7)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from datetime import timedelta

import pypdfium2 as pdfium
from PIL import Image
from sqlalchemy import select, update

from feeds_server import limits
from feeds_server.notify import dead_letters
from feeds_server.notify.previews import make_previews, render
from feeds_server.store.models import Attachment, Event, PreviewJob
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.test_posts_and_feed import base, team  # noqa: F401 - fixture


def image_bytes(fmt: str, size: tuple[int, int] = (800, 600), color: str = "red", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt, **save)
    return out.getvalue()


def animated_gif() -> bytes:
    """Two frames, red then blue: the thumbnail shows the first."""
    frames = [Image.new("RGB", (400, 400), c) for c in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header says it is `width`×`height`: decoding it would need gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def pdf_of(pages: int) -> bytes:
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(612, 792)
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


async def post_files(actor, org, files, **message):  # type: ignore[no-untyped-def]
    parts = [("files", (name, data, ctype)) for name, data, ctype in files]
    r = await actor.post(f"{base(org)}/posts", files=parts, data={"message": json.dumps({"body": "files", **message})})
    assert r.status_code == 201, r.text
    return r.json()["post"]


async def fresh(actor, org, post_id):  # type: ignore[no-untyped-def]
    r = await actor.get(f"{base(org)}/posts/{post_id}")
    assert r.status_code == 200
    return {a["filename"]: a for a in r.json()["post"]["attachments"]}


async def jobs_of(services, org):  # type: ignore[no-untyped-def]
    async with org_session(services.sessions, org["id"]) as s:
        return list((await s.execute(select(PreviewJob).order_by(PreviewJob.id))).scalars())


def stored_files(settings) -> set[str]:  # type: ignore[no-untyped-def]
    root = settings.files_dir
    return {p.name for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"} if root.exists() else set()


async def test_each_image_type_gets_a_thumbnail_by_its_bytes_and_the_post_hears_of_it(team, services):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [
        ("a.png", image_bytes("PNG"), "image/png"),
        ("b.jpg", image_bytes("JPEG", (1200, 300)), "image/jpeg"),
        ("c.gif", animated_gif(), "image/gif"),
        # Declared as opaque bytes: what the bytes are decides.
        ("d.bin", image_bytes("WEBP", (100, 50)), "application/octet-stream"),
        ("notes.txt", b"just text", "text/plain"),
    ])
    views = {a["filename"]: a for a in post["attachments"]}
    assert [views[n]["preview"] for n in ("a.png", "b.jpg", "c.gif", "d.bin")] == [{"state": "pending", "width": None, "height": None}] * 4
    assert views["notes.txt"]["preview"] is None
    # Written with the post, in its transaction: one job per image, none for the text.
    assert sorted(j.attachment_id for j in await jobs_of(services, org)) == sorted(views[n]["id"] for n in ("a.png", "b.jpg", "c.gif", "d.bin"))
    pending = await bob.get(f"{base(org)}/attachments/{views['a.png']['id']}/preview")
    assert pending.status_code == 404 and pending.json()["error"]["code"] == "preview_not_found"

    assert await make_previews(services, burst=True) == 4

    now = await fresh(bob, org, post["id"])
    assert now["a.png"]["preview"] == {"state": "ready", "width": 320, "height": 240}
    assert (now["a.png"]["width"], now["a.png"]["height"]) == (800, 600)
    assert now["b.jpg"]["preview"]["width"] == 320 and now["b.jpg"]["preview"]["height"] == 80
    assert now["d.bin"]["preview"] == {"state": "ready", "width": 100, "height": 50}
    assert now["notes.txt"]["preview"] is None and "width" not in now["notes.txt"]
    for name in ("a.png", "b.jpg", "c.gif", "d.bin"):
        r = await bob.get(f"{base(org)}/attachments/{now[name]['id']}/preview")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/webp"
        assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"] == 'inline; filename="preview.webp"'
        assert r.headers["cache-control"].startswith("private, max-age=")
        thumb = Image.open(io.BytesIO(r.content))
        assert thumb.format == "WEBP" and max(thumb.size) <= limits.PREVIEW_MAX_SIDE
    gif = Image.open(io.BytesIO((await bob.get(f"{base(org)}/attachments/{now['c.gif']['id']}/preview")).content)).convert("RGB")
    red, _, blue = gif.getpixel((10, 10))
    assert red > 200 and blue < 50  # the first frame
    assert all(j.status == "done" for j in await jobs_of(services, org))
    async with org_session(services.sessions, org["id"]) as s:
        events = list((await s.execute(select(Event).where(Event.type == "attachment.previewed").order_by(Event.seq))).scalars())
    assert len(events) == 4 and {e.payload["post_id"] for e in events} == {post["id"]}
    assert all(e.channels == ["org"] and e.payload["attachment"]["preview"]["state"] == "ready" for e in events)


async def test_the_viewer_gets_an_image_inline_and_any_other_file_stays_a_download(team, services):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [
        ("photo", image_bytes("PNG", (50, 40)), "application/octet-stream"),
        ("fake.png", b"<html><script>alert(1)</script></html>", "image/png"),
        ("page.html", b"<script>alert(1)</script>", "text/html"),
    ])
    views = {a["filename"]: a for a in post["attachments"]}
    assert views["fake.png"]["preview"] is None and views["page.html"]["preview"] is None
    assert await make_previews(services, burst=True) == 1
    shown = await bob.get(f"{base(org)}/attachments/{views['photo']['id']}/image")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert shown.headers["content-disposition"].startswith("inline;")
    assert Image.open(io.BytesIO(shown.content)).size == (50, 40)
    for name in ("fake.png", "page.html"):
        for path in ("image", "preview"):
            r = await bob.get(f"{base(org)}/attachments/{views[name]['id']}/{path}")
            assert r.status_code == 404 and "text/html" not in r.headers["content-type"]
        download = await bob.get(f"{base(org)}/attachments/{views[name]['id']}")
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "text/html" not in download.headers["content-type"]


async def test_a_decompression_bomb_and_a_corrupt_file_are_set_aside_and_the_rest_goes_on(team, services):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [
        ("bomb.png", png_claiming(60_000, 60_000), "image/png"),
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50, "image/jpeg"),
        ("fine.png", image_bytes("PNG", (64, 64)), "image/png"),
    ])
    assert await make_previews(services, burst=True) == 1
    now = await fresh(ann, org, post["id"])
    assert now["bomb.png"]["preview"]["state"] == "failed" and now["broken.jpg"]["preview"]["state"] == "failed"
    assert now["fine.png"]["preview"]["state"] == "ready"
    jobs = {j.attachment_id: j for j in await jobs_of(services, org)}
    bomb, broken = jobs[now["bomb.png"]["id"]], jobs[now["broken.jpg"]["id"]]
    assert bomb.status == "failed" and bomb.last_error.startswith("refused: decompression bomb")
    assert broken.status == "failed" and broken.last_error.startswith("refused: not a readable image")
    assert bomb.attempts == 1  # the file is the problem: not tried again
    r = await ann.get(f"{base(org)}/attachments/{now['bomb.png']['id']}/preview")
    assert r.status_code == 404
    letters = [d for d in await dead_letters.listing(services.sessions) if d.outbox == "preview"]
    assert sorted(d.id for d in letters) == sorted([bomb.id, broken.id])
    # An operator may put one back: its attachment waits again, and is refused again.
    assert await dead_letters.retry(services.sessions, [f"preview:{bomb.id}"], services.clock()) == 1
    assert (await fresh(ann, org, post["id"]))["bomb.png"]["preview"]["state"] == "pending"
    assert await make_previews(services, burst=True) == 0
    assert (await fresh(ann, org, post["id"]))["bomb.png"]["preview"]["state"] == "failed"


async def test_a_file_that_takes_too_long_is_killed_and_refused(team, services):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [("slow.png", image_bytes("PNG"), "image/png")])
    assert await make_previews(services, burst=True, timeout=0.001) == 0
    [job] = await jobs_of(services, org)
    assert job.status == "failed" and job.last_error.startswith("refused: timeout")
    assert (await fresh(ann, org, post["id"]))["slow.png"]["preview"]["state"] == "failed"


async def test_a_pdf_gets_its_page_count_and_a_first_page_thumbnail(team, services):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [("report.pdf", pdf_of(3), "application/pdf"), ("bad.pdf", b"%PDF-1.7\nnot really", "application/pdf")])
    assert await make_previews(services, burst=True) == 1
    now = await fresh(bob, org, post["id"])
    assert now["report.pdf"]["page_count"] == 3
    assert now["report.pdf"]["preview"]["state"] == "ready"
    # A US Letter page, 612 × 792 points: 247 × 320 once fitted.
    assert now["report.pdf"]["preview"]["height"] == limits.PREVIEW_MAX_SIDE
    r = await bob.get(f"{base(org)}/attachments/{now['report.pdf']['id']}/preview")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(r.content)).size == (now["report.pdf"]["preview"]["width"], limits.PREVIEW_MAX_SIDE)
    assert now["bad.pdf"]["preview"]["state"] == "failed"
    # The viewer shows images only: a PDF stays a download.
    assert (await bob.get(f"{base(org)}/attachments/{now['report.pdf']['id']}/image")).status_code == 404


async def test_previews_follow_the_visibility_of_the_file(team, services, client):  # noqa: F811
    owner, ann, bob, org = team
    gid = (await owner.post(f"{base(org)}/groups", json={"name": "Pair", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    post = await post_files(ann, org, [("secret.png", image_bytes("PNG", (30, 30)), "image/png")], group_id=gid)
    assert await make_previews(services, burst=True) == 1
    att = post["attachments"][0]["id"]
    for path in ("preview", "image"):
        assert (await ann.get(f"{base(org)}/attachments/{att}/{path}")).status_code == 200
        outside = await bob.get(f"{base(org)}/attachments/{att}/{path}")
        assert outside.status_code == 404 and outside.json()["error"]["code"] == "attachment_not_found"
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    other = await factory.create_org(stranger)
    for path in ("preview", "image"):
        assert (await stranger.get(f"/api/v1/orgs/{other['slug']}/attachments/{att}/{path}")).status_code == 404


async def test_deleting_the_post_removes_the_thumbnails_too(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    before = stored_files(settings)
    post = await post_files(ann, org, [("a.png", image_bytes("PNG", (20, 20)), "image/png")])
    assert await make_previews(services, burst=True) == 1
    async with org_session(services.sessions, org["id"]) as s:
        attachment = (await s.execute(select(Attachment))).scalar_one()
    assert {attachment.storage_key, attachment.preview_key} == stored_files(settings) - before
    assert (await ann.delete(f"{base(org)}/posts/{post['id']}")).status_code == 204
    assert stored_files(settings) == before


async def test_a_post_deleted_before_its_preview_leaves_no_thumbnail_behind(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    before = stored_files(settings)
    post = await post_files(ann, org, [("a.png", image_bytes("PNG", (20, 20)), "image/png")])
    assert (await ann.delete(f"{base(org)}/posts/{post['id']}")).status_code == 204
    assert await make_previews(services, burst=True) == 0
    assert await jobs_of(services, org) == []
    assert stored_files(settings) == before


async def test_deleting_the_org_or_erasing_a_member_removes_their_thumbnails(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    before = stored_files(settings)
    await post_files(ann, org, [("ann.png", image_bytes("PNG", (20, 20)), "image/png")])
    await post_files(bob, org, [("bob.png", image_bytes("PNG", (20, 20)), "image/png")])
    assert await make_previews(services, burst=True) == 2
    assert len(stored_files(settings) - before) == 4  # two files, two thumbnails
    erased = await owner.post(f"{base(org)}/members/{ann.id}/erase")
    assert erased.status_code == 200 and erased.json()["erased"]["files"] == 1
    assert len(stored_files(settings) - before) == 2
    assert (await owner.delete(base(org))).status_code == 204
    assert stored_files(settings) == before


async def test_a_job_whose_worker_died_is_taken_again_and_set_aside_after_its_attempts(team, services):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [("a.png", image_bytes("PNG", (20, 20)), "image/png"), ("b.png", image_bytes("PNG", (20, 20)), "image/png")])
    ids = [a["id"] for a in post["attachments"]]
    expired = services.clock() - timedelta(seconds=1)
    async with org_session(services.sessions, org["id"]) as s:
        # Both were being made by a worker that died; the second has died on every attempt it had.
        await s.execute(update(PreviewJob).where(PreviewJob.attachment_id == ids[0]).values(status="working", attempts=1, leased_until=expired))
        await s.execute(update(PreviewJob).where(PreviewJob.attachment_id == ids[1]).values(
            status="working", attempts=limits.PREVIEW_MAX_ATTEMPTS, leased_until=expired))
    assert await make_previews(services, burst=True) == 1
    jobs = {j.attachment_id: j for j in await jobs_of(services, org)}
    assert jobs[ids[0]].status == "done" and jobs[ids[0]].attempts == 2
    assert jobs[ids[1]].status == "failed" and jobs[ids[1]].last_error.startswith(f"gave_up: after {limits.PREVIEW_MAX_ATTEMPTS} attempts")
    now = await fresh(ann, org, post["id"])
    assert now["a.png"]["preview"]["state"] == "ready" and now["b.png"]["preview"]["state"] == "failed"
    async with org_session(services.sessions, org["id"]) as s:
        told = [e.payload["attachment"] for e in (await s.execute(select(Event).where(Event.type == "attachment.previewed"))).scalars()]
    # Open pages hear of both: the thumbnail made, and the one given up (they stop waiting).
    assert sorted((a["id"], a["preview"]["state"]) for a in told) == [(ids[0], "ready"), (ids[1], "failed")]


async def test_files_stored_before_previews_existed_get_them_by_a_backfill(team, services, settings):  # noqa: F811
    """`feeds-server previews --backfill`: an image or PDF that was never looked at gets a job (once),
    any other file is marked as having nothing to preview, a missing file is left for a later run."""
    from feeds_server.actions.preview_backfill import backfill_previews

    owner, ann, bob, org = team
    post = await post_files(ann, org, [
        ("old.png", image_bytes("PNG"), "image/png"),
        ("old.pdf", pdf_of(2), "application/pdf"),
        ("old.txt", b"plain words", "text/plain"),
        ("gone.png", image_bytes("PNG", (50, 50)), "image/png"),
    ])
    ids = {a["filename"]: a["id"] for a in post["attachments"]}
    async with org_session(services.sessions, org["id"]) as s:
        # As a file stored before previews existed: never looked at, no job.
        await s.execute(update(Attachment).where(Attachment.post_id == post["id"]).values(preview_state=None))
        for job in (await s.execute(select(PreviewJob))).scalars():
            await s.delete(job)
        gone = (await s.execute(select(Attachment.storage_key).where(Attachment.id == ids["gone.png"]))).scalar_one()
    (settings.files_dir / gone[:2] / gone).unlink()
    assert all(a["preview"] is None for a in (await fresh(bob, org, post["id"])).values())

    done = await backfill_previews(services, org["slug"])
    assert (done.queued, done.not_previewable, done.missing_files) == (2, 1, 1)
    assert sorted(j.attachment_id for j in await jobs_of(services, org)) == sorted([ids["old.png"], ids["old.pdf"]])
    assert await make_previews(services, burst=True) == 2
    now = await fresh(bob, org, post["id"])
    assert now["old.png"]["preview"]["state"] == "ready" and now["old.pdf"]["page_count"] == 2
    assert now["old.txt"]["preview"] is None and now["gone.png"]["preview"] is None

    again = await backfill_previews(services)  # every org: only the missing file is looked at again
    assert (again.queued, again.not_previewable, again.missing_files) == (0, 0, 1)
    assert org["slug"] in again.orgs
    assert len(await jobs_of(services, org)) == 2


async def test_a_thumbnail_or_image_gone_from_the_store_answers_404(team, services, settings):  # noqa: F811
    owner, ann, bob, org = team
    post = await post_files(ann, org, [("a.png", image_bytes("PNG", (20, 20)), "image/png")])
    assert await make_previews(services, burst=True) == 1
    async with org_session(services.sessions, org["id"]) as s:
        attachment = (await s.execute(select(Attachment).where(Attachment.post_id == post["id"]))).scalar_one()
    for key in (attachment.preview_key, attachment.storage_key):
        (settings.files_dir / key[:2] / key).unlink()
    for path, code in (("preview", "preview_not_found"), ("image", "image_not_found")):
        r = await bob.get(f"{base(org)}/attachments/{attachment.id}/{path}")
        assert r.status_code == 404 and r.json()["error"]["code"] == code, r.text


async def test_a_photo_turned_by_its_exif_orientation_has_the_size_it_is_shown_at() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter clockwise, as phones store portrait photos
    out = io.BytesIO()
    Image.new("RGB", (800, 600), "red").save(out, format="JPEG", exif=exif)
    thumbnail = await render(out.getvalue())
    assert (thumbnail.facts["width"], thumbnail.facts["height"]) == (600, 800)
    assert (thumbnail.facts["preview_width"], thumbnail.facts["preview_height"]) == (240, 320)
