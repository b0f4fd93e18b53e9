"""The parts of uvicorn this server relies on beyond its public API (runtime/uvicorn_parts.py) are
there: an upgrade of uvicorn that moves or renames one fails here, naming it, rather than at run time."""

from __future__ import annotations

import ast
from pathlib import Path

import feeds_server
from feeds_server.runtime.uvicorn_parts import UVICORN_CONTRACT, check_contract

PACKAGE = Path(feeds_server.__file__).parent


async def test_the_installed_uvicorn_has_everything_the_server_relies_on():
    missing = check_contract()
    assert missing == [], "uvicorn changed under runtime/uvicorn_parts.py:\n" + "\n".join(missing)


def test_uvicorn_internals_are_imported_from_one_module_only():
    """Other modules use uvicorn's public `Config` and `Server` at most; everything else goes through
    runtime/uvicorn_parts.py, whose contract the test above checks."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "uvicorn_parts.py" or "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("uvicorn."):
                offenders.append(f"{path.relative_to(PACKAGE)}: from {node.module} import …")
    assert offenders == []


def test_the_contract_lists_what_the_subclasses_override():
    """Every method our protocols override is in the contract, so a renamed hook is caught."""
    from feeds_server.api.http_wire import GuardedHttpProtocol
    from feeds_server.realtime.wire import WireProtocol

    for ours, theirs in ((GuardedHttpProtocol, "HttpToolsProtocol"), (WireProtocol, "WebSocketsSansIOProtocol")):
        base = ours.__mro__[1]
        overridden = {name for name, value in vars(ours).items() if callable(value) and hasattr(base, name) and not name.startswith("__")}
        assert overridden <= set(UVICORN_CONTRACT[theirs]["methods"]), (theirs, overridden - set(UVICORN_CONTRACT[theirs]["methods"]))
