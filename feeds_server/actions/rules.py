"""Auto-follow rules (F-FOLLOW-4 … F-FOLLOW-7): create, list, edit, delete, preview, and evaluate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.directory import must_get
from feeds_server.domain.criteria import Criteria, compile_criteria, criteria_to_text
from feeds_server.domain.records import Directory, Followers, RecordFacts, rule_followers
from feeds_server.errors import Forbidden, LimitExceeded, NotFound
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import AutoFollowRule, Group, Membership, Record, Role, Territory, TerritoryMember, User


@lru_cache(maxsize=4096)
def _compiled(rule_id: int, version: str, criteria_json: bytes) -> Criteria:
    """Compiled once per rule version, reused by every event that evaluates it."""
    return compile_criteria(orjson.loads(criteria_json))


def compiled(rule: AutoFollowRule) -> Criteria:
    return _compiled(rule.id, rule.updated_at.isoformat(), orjson.dumps(rule.criteria, option=orjson.OPT_SORT_KEYS))


async def load_directory(session: AsyncSession) -> Directory:
    graph = await load_graph(session, with_members=True)
    members: dict[int, set[int]] = {}
    for territory_id, user_id in await session.execute(select(TerritoryMember.territory_id, TerritoryMember.user_id)):
        members.setdefault(territory_id, set()).add(user_id)
    return Directory(graph, {t: frozenset(u) for t, u in members.items()})


@dataclass
class RuleSet:
    """The rules of some modules, compiled, with the people directory loaded only if a rule matches."""

    by_module: dict[str, list[AutoFollowRule]]
    directory: Directory | None = None

    async def followers_for(self, session: AsyncSession, module: str, fields: Mapping[str, Any], record: RecordFacts) -> frozenset[int]:
        out: set[int] = set()
        for rule in self.by_module.get(module, []):
            if not compiled(rule).matches(fields):
                continue
            if self.directory is None:
                self.directory = await load_directory(session)
            out |= rule_followers(rule.creator_id, Followers.from_json(rule.followers), record, self.directory)
        return frozenset(out)


async def load_rule_set(session: AsyncSession, modules: Iterable[str]) -> RuleSet:
    by_module: dict[str, list[AutoFollowRule]] = {}
    for rule in (await session.execute(select(AutoFollowRule).where(AutoFollowRule.module.in_(set(modules))))).scalars():
        by_module.setdefault(rule.module, []).append(rule)
    return RuleSet(by_module)


async def _check_follower_ids(session: AsyncSession, f: Followers) -> None:
    """Every named follower must exist in this org."""
    checks = [("users", Membership.user_id, f.users), ("roles", Role.id, f.roles), ("groups", Group.id, f.groups), ("territories", Territory.id, f.territories)]
    for name, column, ids in checks:
        if not ids:
            continue
        found = set((await session.execute(select(column).where(column.in_(set(ids))))).scalars())
        missing = sorted(set(ids) - found)
        if missing:
            raise NotFound(f"{name[:-1] if name != 'territories' else 'territory'}_not_found", f"no such {name[:-1]}: {missing[0]}", field=f"followers.{name}")


async def create_rule(
    session: AsyncSession, creator_id: int, is_admin: bool, name: str, module: str, criteria: Any, followers: Followers,
    description: str, now: datetime,
) -> AutoFollowRule:
    compile_criteria(criteria)
    followers.check_allowed(is_admin)
    await _check_follower_ids(session, followers)
    count = (
        await session.execute(
            select(func.count()).select_from(AutoFollowRule).where(AutoFollowRule.creator_id == creator_id, AutoFollowRule.module == module)
        )
    ).scalar_one()
    if count >= limits.MAX_RULES_PER_MODULE_PER_CREATOR:
        raise LimitExceeded(
            "too_many_rules", f"at most {limits.MAX_RULES_PER_MODULE_PER_CREATOR} rules per module for each creator",
            limit=limits.MAX_RULES_PER_MODULE_PER_CREATOR, module=module,
        )
    rule = AutoFollowRule(
        creator_id=creator_id, name=name.strip(), module=module, criteria=criteria, followers=followers.to_json(),
        description=description, created_at=now, updated_at=now,
    )
    session.add(rule)
    await session.flush()
    append_event(session, "rule.created", {"rule_id": rule.id, "module": module}, creator_id)
    return rule


async def shared_with(session: AsyncSession, user_id: int, role_id: int | None) -> list[AutoFollowRule]:
    """Rules naming the user as a follower: directly, through their role, a group or a territory."""
    rules = list((await session.execute(select(AutoFollowRule).where(AutoFollowRule.creator_id != user_id).order_by(AutoFollowRule.id))).scalars())
    if not rules:
        return []
    graph = await load_graph(session)
    territories = set((await session.execute(select(TerritoryMember.territory_id).where(TerritoryMember.user_id == user_id))).scalars())
    out = []
    for rule in rules:
        f = Followers.from_json(rule.followers)
        if (
            user_id in f.users
            or (role_id is not None and role_id in f.roles)
            or any(graph.in_group(g, user_id, role_id) for g in f.groups)
            or territories & set(f.territories)
        ):
            out.append(rule)
    return out


async def created_by(session: AsyncSession, user_id: int) -> list[AutoFollowRule]:
    return list((await session.execute(select(AutoFollowRule).where(AutoFollowRule.creator_id == user_id).order_by(AutoFollowRule.id))).scalars())


async def own_rule(session: AsyncSession, rule_id: int, user_id: int, role_id: int | None) -> AutoFollowRule:
    """F-FOLLOW-7: users edit and delete their own rules; a rule shared with them is read-only (403);
    any other rule is as if it did not exist (404)."""
    rule = await must_get(session, AutoFollowRule, rule_id, "rule")
    if rule.creator_id == user_id:
        return rule
    if rule in await shared_with(session, user_id, role_id):
        raise Forbidden("not_rule_creator", "only the rule's creator can change it")
    raise NotFound("rule_not_found", "no such rule")


async def update_rule(
    session: AsyncSession, rule: AutoFollowRule, is_admin: bool, name: str | None, criteria: Any, followers: Followers | None,
    description: str | None, now: datetime,
) -> AutoFollowRule:
    if criteria is not None:
        compile_criteria(criteria)
        rule.criteria = criteria
    if followers is not None:
        followers.check_allowed(is_admin)
        await _check_follower_ids(session, followers)
        rule.followers = followers.to_json()
    if name is not None:
        rule.name = name.strip()
    if description is not None:
        rule.description = description
    rule.updated_at = now
    await session.flush()
    append_event(session, "rule.updated", {"rule_id": rule.id}, rule.creator_id)
    return rule


async def delete_rule(session: AsyncSession, rule: AutoFollowRule) -> None:
    rule_id = rule.id
    await session.delete(rule)
    await session.flush()
    append_event(session, "rule.deleted", {"rule_id": rule_id}, rule.creator_id)


async def preview(session: AsyncSession, creator_id: int, module: str, criteria: Any, followers: Followers) -> dict[str, Any]:
    """Which current records of the module match, and who would follow each (before saving)."""
    compiled_ = compile_criteria(criteria)
    directory = await load_directory(session)
    scanned = 0
    matches = []
    stmt = select(Record).where(Record.module == module, Record.deleted_at.is_(None)).order_by(Record.last_activity_at.desc()).limit(PREVIEW_SCAN)
    for record in (await session.execute(stmt)).scalars():
        scanned += 1
        if not compiled_.matches(record.fields or {}):
            continue
        who = rule_followers(creator_id, followers, RecordFacts(record.owner_id, record.creator_id, record.territory_id), directory)
        matches.append((record, sorted(who)))
        if len(matches) >= limits.RULE_PREVIEW_RECORDS:
            break
    names = dict((await session.execute(select(User.id, User.name).where(User.id.in_({u for _, w in matches for u in w})))).all())
    return {
        "criteria_text": criteria_to_text(criteria),
        "scanned": scanned,
        "matches": [
            {"record": {"id": r.id, "crm_id": r.crm_id, "name": r.name, "module": r.module},
             "followers": [{"id": u, "name": names.get(u)} for u in who]}
            for r, who in matches
        ],
    }


# Preview looks at the most recently active records of the module, not the whole history.
PREVIEW_SCAN = 10_000


def rule_view(rule: AutoFollowRule) -> dict[str, Any]:
    return {
        "id": rule.id, "name": rule.name, "description": rule.description, "module": rule.module, "creator_id": rule.creator_id,
        "criteria": rule.criteria, "criteria_text": criteria_to_text(rule.criteria), "followers": rule.followers,
        "created_at": rule.created_at, "updated_at": rule.updated_at,
    }
