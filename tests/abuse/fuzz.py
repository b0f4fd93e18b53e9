"""Property-based fuzzing of the HTTP API from its OpenAPI document (schemathesis + hypothesis).

Every operation of `/openapi.json` gets generated requests, valid (positive) and invalid (negative:
wrong types, missing fields, out-of-range values, NUL bytes and astral characters included), sent
as a signed-in admin of a real org to a running node. The one property checked is the one that
must hold for any input: the server never answers 5xx. Used by tests/abuse/test_fuzz_openapi.py
(a few examples per operation) and by `bench/fuzz.py` (many).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation import GenerationMode

# Operations that end the caller's own access (the run would go on as a stranger) are left out.
SKIPPED = {
    ("POST", "/api/v1/auth/signout"),
    ("POST", "/api/v1/auth/signout-everywhere"),
    ("DELETE", "/api/v1/me/sessions/{session_id}"),
    ("POST", "/api/v1/me/erase"),
    ("DELETE", "/api/v1/orgs/{slug}"),
}


@dataclass
class FuzzResult:
    operations: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)


async def real_ids(base_url: str, token: str, slug: str, user_id: int) -> dict[str, int]:
    """Ids of real items of the org (one of each kind a path can name), so that generated requests
    also reach the handlers behind the 404 of an unknown id."""
    base = f"/api/v1/orgs/{slug}"
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        ids = {"user_id": user_id}
        ids["profile_id"] = (await c.get(f"{base}/profiles")).json()["profiles"][-1]["id"]
        ids["node_id"] = (await c.get(f"{base}/roles")).json()["roles"][-1]["id"]
        ids["invitation_id"] = (await c.post(f"{base}/invitations", json={"email": "fuzz@example.com"})).json()["invitation"]["id"]
        integration = (await c.post(f"{base}/integrations", json={"name": "CRM"})).json()
        ids["integration_id"] = integration["integration"]["id"]
        r = await c.post(f"{base}/integration/record-events", headers={"Authorization": f"Bearer {integration['token']}"},
                         json={"events": [{"event_id": "f1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Deal"}}]})
        ids["record_id"] = r.json()["results"][0]["record_id"]
        ids["rule_id"] = (await c.post(f"{base}/rules", json={
            "name": "R", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1}})).json()["rule"]["id"]
        ids["group_id"] = (await c.post(f"{base}/groups", json={"name": "G", "sources": [{"type": "user", "id": user_id}]})).json()["group"]["id"]
        post = (await c.post(f"{base}/posts", files=[("files", ("a.txt", b"abc", "text/plain"))], data={"message": '{"body": "hi"}'})).json()["post"]
        ids["post_id"], ids["attachment_id"] = post["id"], post["attachments"][0]["id"]
        ids["comment_id"] = (await c.post(f"{base}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]["id"]
    return ids


def run(base_url: str, token: str, slug: str, max_examples: int, seed: int | None = None, ids: dict[str, int] | None = None) -> FuzzResult:
    """Fuzz every operation with up to `max_examples` requests per generation mode, with random ids
    in the path and, when `ids` are given, again with those real ones."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    result = FuzzResult()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    operations = [found.ok() for found in schema.get_all_operations()]
    # Deletions last, so the real items are there for everything else.
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        result.operations += 1
        names = [p.split(":")[0] for p in re.findall(r"\{([^}]+)\}", operation.path)]
        path = {"slug": slug} if "slug" in names else {}
        variants = [path]
        if ids and any(n in ids for n in names):
            variants.append({**path, **{n: ids[n] for n in names if n in ids}})
        for fixed in variants:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(operation, mode, fixed or None, base_url, session, headers, max_examples, seed, result)
    return result


def _fuzz_operation(operation, mode, path, base_url, session, headers, max_examples, seed, result) -> None:  # type: ignore[no-untyped-def]
    try:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path)
    except Exception:  # noqa: BLE001 - no negative example can be built for some operations
        return

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is not None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(case=strategy)
    def check(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        result.examples += 1
        result.statuses[response.status_code] += 1
        if os.environ.get("FUZZ_TRACE"):
            print(response.status_code, case.method, case.formatted_path, response.text[:120])
        if response.status_code >= 500:
            result.server_errors.append(f"{response.status_code} {case.as_curl_command()}")

    try:
        check()
    except Exception as exc:  # noqa: BLE001 - a case that cannot be sent (e.g. an unencodable header) is not a server fault
        if "Unsatisfiable" not in type(exc).__name__:
            result.statuses[-1] += 1
