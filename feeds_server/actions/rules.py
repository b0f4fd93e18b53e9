"""Auto-follow rules (F-FOLLOW-4 … F-FOLLOW-7): create, list, edit, delete, preview, and evaluate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.directory import must_get
from feeds_server.domain.criteria import Criteria, compile_criteria, criteria_to_text
from feeds_server.domain.records import Directory, Followers, RecordFacts, follow_fields, rule_followers
from feeds_server.domain.audience import user_channel
from feeds_server.errors import Conflict, Forbidden, LimitExceeded, NotFound
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import AutoFollowRule, Follow, Group, Membership, Record, Role, Territory, TerritoryMember, User


@lru_cache(maxsize=4096)
def _compiled(rule_id: int, version: int, criteria_json: bytes) -> Criteria:
    return compile_criteria(orjson.loads(criteria_json))


def compiled(rule: AutoFollowRule) -> Criteria:
    """Compiled once per rule version and reused by every event that evaluates it."""
    return _compiled(rule.id, rule.version, orjson.dumps(rule.criteria, option=orjson.OPT_SORT_KEYS))


async def load_directory(session: AsyncSession) -> Directory:
    graph = await load_graph(session, with_members=True)
    parents = dict((await session.execute(select(Territory.id, Territory.parent_id))).all())
    members: dict[int, set[int]] = {}
    for territory_id, user_id in await session.execute(select(TerritoryMember.territory_id, TerritoryMember.user_id)):
        members.setdefault(territory_id, set()).add(user_id)
    return Directory(graph, parents, {t: frozenset(u) for t, u in members.items()})


@dataclass(frozen=True)
class RuleRef:
    """The rule behind a follow by rule: named in the follower's reason, its fields copied to the follow."""

    id: int
    name: str
    fields: tuple[str, ...] | None


@dataclass(frozen=True)
class _Compiled:
    creator_id: int
    criteria: Criteria
    followers: Followers
    ref: RuleRef


@dataclass(frozen=True)
class RuleSet:
    """The rules of some modules, compiled, and the directory their followers are resolved in."""

    by_module: Mapping[str, list[_Compiled]]
    directory: Directory | None
    # Who a rule makes follow a record depends only on the rule and the record's people: resolved once.
    _resolved: dict[tuple[int, RecordFacts], frozenset[int]] = field(default_factory=dict, compare=False, repr=False)

    def followers_for(self, module: str, fields: Mapping[str, Any], record: RecordFacts) -> dict[int, RuleRef]:
        """F-FOLLOW-4: everyone a matching rule of the module makes follow the record, with the rule
        (the oldest, when several match) whose fields their follow takes."""
        out: dict[int, RuleRef] = {}
        for rule in self.by_module.get(module, ()):
            if rule.criteria.matches(fields):
                key = (id(rule), record)
                who = self._resolved.get(key)
                if who is None:
                    assert self.directory is not None
                    who = self._resolved[key] = rule_followers(rule.creator_id, rule.followers, record, self.directory)
                for user_id in who:
                    out.setdefault(user_id, rule.ref)
        return out

    def names(self) -> dict[int, str]:
        return {r.ref.id: r.ref.name for rules in self.by_module.values() for r in rules}

    def fields_of(self, rule_id: int) -> tuple[str, ...] | None:
        for rules in self.by_module.values():
            for r in rules:
                if r.ref.id == rule_id:
                    return r.ref.fields
        return None


async def load_rule_set(session: AsyncSession, modules: Iterable[str]) -> RuleSet:
    by_module: dict[str, list[_Compiled]] = {}
    stmt = select(AutoFollowRule).where(AutoFollowRule.module.in_(set(modules))).order_by(AutoFollowRule.id)
    for rule in (await session.execute(stmt)).scalars():
        ref = RuleRef(rule.id, rule.name, tuple(rule.fields) if rule.fields is not None else None)
        by_module.setdefault(rule.module, []).append(_Compiled(rule.creator_id, compiled(rule), Followers.from_json(rule.followers), ref))
    return RuleSet(by_module, await load_directory(session) if by_module else None)


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


async def _check_name_free(session: AsyncSession, creator_id: int, module: str, name: str, rule_id: int | None = None) -> None:
    """A creator's rules of one module have distinct names (rule files match rules by name)."""
    stmt = select(AutoFollowRule.id).where(
        AutoFollowRule.creator_id == creator_id, AutoFollowRule.module == module, AutoFollowRule.name == name
    )
    if rule_id is not None:
        stmt = stmt.where(AutoFollowRule.id != rule_id)
    if (await session.execute(stmt)).first() is not None:
        raise Conflict("rule_name_taken", f"you already have a {module} rule named {name!r}", field="name")


async def create_rule(
    session: AsyncSession, creator_id: int, is_admin: bool, name: str, module: str, criteria: Any, followers: Followers,
    description: str, now: datetime, fields: list[str] | None = None,
) -> AutoFollowRule:
    """F-FOLLOW-4 … F-FOLLOW-6: a valid rule, with followers the creator may name, within the limit.
    `fields` (None: every field) is given to the follows the rule makes."""
    compile_criteria(criteria)
    fields = follow_fields(fields)
    followers.check_allowed(is_admin)
    await _check_follower_ids(session, followers)
    # Serialize one creator's rule creation so two concurrent requests cannot both pass the count.
    await session.execute(select(Membership.user_id).where(Membership.user_id == creator_id).with_for_update())
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
    name = name.strip()
    await _check_name_free(session, creator_id, module, name)
    rule = AutoFollowRule(
        creator_id=creator_id, name=name, module=module, criteria=criteria, followers=followers.to_json(), fields=fields,
        description=description, version=1, created_at=now, updated_at=now,
    )
    session.add(rule)
    await session.flush()
    append_event(session, "rule.created", {"rule_id": rule.id, "module": module}, creator_id, [user_channel(creator_id)])
    return rule


async def shared_with(session: AsyncSession, user_id: int, role_id: int | None) -> list[AutoFollowRule]:
    """Rules naming the user as a follower: directly, through their role, a group, or a territory
    they belong to (a territory includes the territories below it)."""
    rules = list((await session.execute(select(AutoFollowRule).where(AutoFollowRule.creator_id != user_id).order_by(AutoFollowRule.id))).scalars())
    if not rules:
        return []
    graph = await load_graph(session)
    parents = dict((await session.execute(select(Territory.id, Territory.parent_id))).all())
    territories: set[int] = set()
    for tid in (await session.execute(select(TerritoryMember.territory_id).where(TerritoryMember.user_id == user_id))).scalars():
        while tid is not None and tid not in territories:
            territories.add(tid)
            tid = parents.get(tid)
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


# Says "leave the rule's fields as they are" (None means every field).
KEEP: Any = object()


async def update_rule(
    session: AsyncSession, rule: AutoFollowRule, is_admin: bool, name: str | None, criteria: Any, followers: Followers | None,
    description: str | None, now: datetime, fields: Any = KEEP,
) -> AutoFollowRule:
    """Edit a rule; new `fields` are given to the follows it made too, which keep following the rule."""
    if fields is not KEEP:
        fields = follow_fields(fields)
        if fields != rule.fields:
            rule.fields = fields
            await session.execute(update(Follow).where(Follow.rule_id == rule.id).values(fields=null() if fields is None else fields))
    if criteria is not None:
        compile_criteria(criteria)
        rule.criteria = criteria
    if followers is not None:
        followers.check_allowed(is_admin)
        await _check_follower_ids(session, followers)
        rule.followers = followers.to_json()
    if name is not None:
        await _check_name_free(session, rule.creator_id, rule.module, name.strip(), rule.id)
        rule.name = name.strip()
    if description is not None:
        rule.description = description
    rule.version += 1
    rule.updated_at = now
    await session.flush()
    append_event(session, "rule.updated", {"rule_id": rule.id}, rule.creator_id, [user_channel(rule.creator_id)])
    return rule


async def release_follows(session: AsyncSession, rule_id: int) -> None:
    """The follows a deleted rule made stay, with the fields they care about, but no longer name it:
    a later rule given the same id (SQLite reuses ids) must not take them over."""
    await session.execute(update(Follow).where(Follow.rule_id == rule_id).values(rule_id=None))


async def delete_rule(session: AsyncSession, rule: AutoFollowRule) -> None:
    rule_id = rule.id
    await release_follows(session, rule_id)
    await session.delete(rule)
    await session.flush()
    append_event(session, "rule.deleted", {"rule_id": rule_id}, rule.creator_id, [user_channel(rule.creator_id)])


async def preview(session: AsyncSession, creator_id: int, module: str, criteria: Any, followers: Followers) -> dict[str, Any]:
    """Before saving: which current records of the module match, and who would follow each.

    Looks at the module's most recently active records (at most `RULE_PREVIEW_SCAN`); `complete`
    says whether that was all of them.
    """
    compiled_ = compile_criteria(criteria)
    await _check_follower_ids(session, followers)
    directory = await load_directory(session)
    stmt = (
        select(Record.id, Record.crm_id, Record.name, Record.owner_id, Record.creator_id, Record.territory_id, Record.fields)
        .where(Record.module == module, Record.deleted_at.is_(None))
        .order_by(Record.last_activity_at.desc(), Record.id.desc())
        .limit(limits.RULE_PREVIEW_SCAN)
    )
    scanned = matched = 0
    shown: list[tuple[Any, list[int]]] = []
    for row in await session.execute(stmt):
        scanned += 1
        if not compiled_.matches(row.fields or {}):
            continue
        matched += 1
        if len(shown) < limits.RULE_PREVIEW_RECORDS:
            who = rule_followers(creator_id, followers, RecordFacts(row.owner_id, row.creator_id, row.territory_id), directory)
            shown.append((row, sorted(who)))
    wanted = {u for _, who in shown for u in who}
    names = dict((await session.execute(select(User.id, User.name).where(User.id.in_(wanted)))).all()) if wanted else {}
    return {
        "criteria_text": criteria_to_text(criteria),
        "scanned": scanned,
        "matched": matched,
        "complete": scanned < limits.RULE_PREVIEW_SCAN,
        "matches": [
            {"record": {"id": r.id, "module": module, "crm_id": r.crm_id, "name": r.name},
             "followers": [{"id": u, "name": names.get(u)} for u in who]}
            for r, who in shown
        ],
    }


def rule_view(rule: AutoFollowRule) -> dict[str, Any]:
    return {
        "id": rule.id, "name": rule.name, "description": rule.description, "module": rule.module, "creator_id": rule.creator_id,
        "criteria": rule.criteria, "criteria_text": criteria_to_text(rule.criteria), "followers": rule.followers, "fields": rule.fields,
        "version": rule.version, "created_at": rule.created_at, "updated_at": rule.updated_at,
    }
