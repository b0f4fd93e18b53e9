from tests import factory


async def test_sign_up_create_org_and_read_it(client, services):
    alice = await factory.sign_up(client, "Alice")
    org = await factory.create_org(alice, "acme-smoke")
    r = await alice.get(f"/api/v1/orgs/{org['slug']}")
    assert r.status_code == 200, r.text
    assert r.json()["membership"]["is_super_admin"] is True


def test_the_routes_matched_first_share_their_paths_with_no_other_route():
    """app.HOT_ROUTES go to the front of the route table: safe only while no other route matches
    their paths, so that moving them changes which route answers nothing."""
    from starlette.routing import Match

    from feeds_server.api.app import HOT_ROUTES, all_endpoints
    from feeds_server.api.pipeline import build_route

    endpoints = all_endpoints()
    assert {(ep.method, ep.path) for ep in endpoints} >= set(HOT_ROUTES)
    for method, path in HOT_ROUTES:
        concrete = path.replace("{slug}", "acme")
        others = [ep for ep in endpoints if (ep.method, ep.path) != (method, path)]
        for ep in others:
            scope = {"type": "http", "path": concrete, "method": method, "root_path": ""}
            match, _ = build_route(ep).matches(scope)
            assert match is Match.NONE, f"{ep.method} {ep.path} also matches {concrete}"
