"""Bad input gets a clear 4xx with a stable code and changes nothing; never a 500 (F-SEC-3)."""

from __future__ import annotations

import pytest

from feeds_server import limits
from feeds_server.api.app import all_endpoints
from tests import factory


@pytest.fixture
async def owner(client):  # type: ignore[no-untyped-def]
    actor = await factory.sign_up(client, factory.unique("Owner"))
    actor.orgs["main"] = await factory.create_org(actor)
    return actor


async def test_malformed_json_is_400(owner):
    r = await owner.client.post(f"/api/v1/orgs/{owner.orgs['main']['slug']}/roles", content=b'{"name": ', headers={**owner.headers, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    "body",
    [{"name": "R", "colour": "red"}, {"name": 5}, {"name": True}, {"name": ["R"]}, {}, {"name": "R", "parent_id": "1"}, {"name": "a\x00b"}, [1, 2]],
)
async def test_unknown_fields_wrong_types_and_nul_are_422(owner, body):
    slug = owner.orgs["main"]["slug"]
    before = (await owner.get(f"/api/v1/orgs/{slug}/roles")).json()
    r = await owner.post(f"/api/v1/orgs/{slug}/roles", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"
    assert r.json()["error"]["details"]["errors"]
    assert (await owner.get(f"/api/v1/orgs/{slug}/roles")).json() == before


async def test_names_at_the_limit_are_accepted_and_one_more_refused(owner):
    slug = owner.orgs["main"]["slug"]
    ok = await owner.post(f"/api/v1/orgs/{slug}/roles", json={"name": "r" * limits.MAX_NAME_CHARS})
    assert ok.status_code == 201
    long = await owner.post(f"/api/v1/orgs/{slug}/roles", json={"name": "s" * (limits.MAX_NAME_CHARS + 1)})
    assert long.status_code == 422


@pytest.mark.parametrize("bad_id", ["0", str(2**63), str(10**30), "-1", "abc"])
async def test_ids_out_of_range_are_404_never_500(owner, bad_id):
    slug = owner.orgs["main"]["slug"]
    for path in (f"/roles/{bad_id}", f"/members/{bad_id}", f"/posts/{bad_id}"):
        r = await owner.get(f"/api/v1/orgs/{slug}{path}")
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"]


async def test_body_over_the_json_limit_is_413(owner):
    slug = owner.orgs["main"]["slug"]
    r = await owner.post(f"/api/v1/orgs/{slug}/roles", content=b" " * (limits.MAX_JSON_BODY_BYTES + 1), headers={**owner.headers, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


async def test_unknown_route_and_wrong_method_use_the_error_shape(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.put("/api/v1/auth/signin")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_no_credentials_is_401_with_www_authenticate(client):
    r = await client.get("/api/v1/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await client.get("/api/v1/me", headers={"authorization": "Bearer fst_forged"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


async def test_query_parameters_are_validated(owner):
    slug = owner.orgs["main"]["slug"]
    for params in ({"limit": "0"}, {"limit": str(limits.MAX_PAGE_SIZE + 1)}, {"limit": "ten"}, {"unknown": "1"}, {"cursor": "!!"}):
        r = await owner.get(f"/api/v1/orgs/{slug}/members", params=params)
        assert r.status_code == 422, params
    assert (await owner.get(f"/api/v1/orgs/{slug}/members", params={"limit": str(limits.MAX_PAGE_SIZE)})).status_code == 200


async def test_openapi_lists_every_route(client):
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for ep in all_endpoints():
        assert (ep.method, ep.path.replace(":int", "")) in listed
