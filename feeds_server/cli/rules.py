"""`feeds-server rules validate FILE` and `feeds-server rules apply --org SLUG FILE`.

Applying copies the file's rules into one org, as rules of the org's super admin: names are resolved
to that org's people, roles, groups and territories. Applying again updates the rules of the same
name and module instead of adding copies. Each org keeps its own copy; nothing syncs between orgs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from feeds_server.actions import audit, rules
from feeds_server.config import Settings
from feeds_server.domain.records import Followers
from feeds_server.domain.rulefile import NamedFollowers, RuleSpec, parse_rule_file
from feeds_server.errors import FeedsError, NotFound
from feeds_server.runtime.services import Services
from feeds_server.store.models import AutoFollowRule, Group, Membership, Org, Role, Territory, User
from feeds_server.store.scope import org_session


def load(path: str) -> list[RuleSpec]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{path}: cannot read JSON: {exc}") from None
    try:
        return parse_rule_file(data)
    except FeedsError as exc:
        raise SystemExit(f"{path}: {exc.message}") from None


def validate(path: str) -> int:
    specs = load(path)
    for spec in specs:
        print(f"ok  {spec.module:<16} {spec.name}")
    print(f"{path}: {len(specs)} rule(s) valid")
    return 0


async def apply(settings: Settings, slug: str, path: str) -> int:
    specs = load(path)
    services = Services.build(settings)
    try:
        async with services.sessions() as session:
            org = (await session.execute(select(Org).where(Org.slug == slug))).scalar_one_or_none()
        if org is None:
            raise SystemExit(f"no org with the slug {slug!r}")
        done: list[tuple[str, RuleSpec]] = []
        # One transaction: a rule that cannot be applied leaves the org as it was.
        async with org_session(services.sessions, org.id) as session:
            owner = (await session.execute(select(Membership.user_id).where(Membership.is_super_admin.is_(True)))).scalars().first()
            if owner is None:
                raise SystemExit(f"org {slug!r} has no super admin")
            for spec in specs:
                try:
                    followers = await _resolve(session, spec.followers)
                    done.append((await _upsert(session, owner, spec, followers, services), spec))
                except FeedsError as exc:
                    raise SystemExit(f"{path}: rule {spec.name!r}: {exc.message}; nothing was applied to {slug}") from None
            applied = [{"module": s.module, "name": s.name, "result": verb} for verb, s in done]
            audit.record(session, "rules.applied", None, ("user", owner), {"via": "cli", "file": Path(path).name, "rules": applied})
    finally:
        await services.close()
    for verb, spec in done:
        print(f"{verb:<8} {spec.module:<16} {spec.name}")
    print(f"applied {len(specs)} rule(s) to {slug}")
    return 0


async def _ids(session: Any, model: Any, names: tuple[str, ...], what: str) -> tuple[int, ...]:
    out = []
    for name in names:
        found = (await session.execute(select(model.id).where(func.lower(model.name) == name.lower()))).scalar_one_or_none()
        if found is None:
            raise NotFound(f"{what}_not_found", f"no {what} named {name!r} in this org")
        out.append(found)
    return tuple(out)


async def _resolve(session: Any, f: NamedFollowers) -> Followers:
    users = []
    for email in f.users:
        uid = (
            await session.execute(select(User.id).join(Membership, Membership.user_id == User.id).where(User.email == email.lower()))
        ).scalar_one_or_none()
        if uid is None:
            raise NotFound("user_not_found", f"no member with the email {email!r} in this org")
        users.append(uid)
    return Followers(
        creator=f.creator, record_creator=f.record_creator, owner_superior_role=f.owner_superior_role, users=tuple(users),
        roles=await _ids(session, Role, f.roles, "role"), groups=await _ids(session, Group, f.groups, "group"),
        territories=await _ids(session, Territory, f.territories, "territory"),
    )


async def _upsert(session: Any, owner: int, spec: RuleSpec, followers: Followers, services: Services) -> str:
    now = services.clock()
    existing = (
        await session.execute(
            select(AutoFollowRule).where(AutoFollowRule.creator_id == owner, AutoFollowRule.module == spec.module, AutoFollowRule.name == spec.name)
        )
    ).scalar_one_or_none()
    if existing is not None:
        await rules.update_rule(session, existing, True, spec.name, spec.criteria, followers, spec.description, now, fields=_fields(spec))
        return "updated"
    await rules.create_rule(session, owner, True, spec.name, spec.module, spec.criteria, followers, spec.description, now, fields=_fields(spec))
    return "created"


def _fields(spec: RuleSpec) -> list[str] | None:
    """A file's rule without `fields` follows every field, also when applied over a rule that named some."""
    return list(spec.fields) if spec.fields is not None else None
