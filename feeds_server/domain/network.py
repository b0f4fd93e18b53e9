"""Client addresses and IP allow-lists (F-SEC-4)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from feeds_server.errors import ValidationFailed

MAX_RANGES = 100
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ranges(ranges: Iterable[str], field: str = "ranges") -> list[str]:
    """Normalized CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`, a single address); refuses anything else."""
    out = []
    for i, raw in enumerate(ranges):
        try:
            out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError:
            raise ValidationFailed("invalid_ip_range", f"not an IP range: {raw!r}", field=f"{field}[{i}]") from None
    if len(out) > MAX_RANGES:
        raise ValidationFailed("too_many_ip_ranges", f"at most {MAX_RANGES} ranges", field=field, limit=MAX_RANGES)
    return sorted(set(out))


def allowed(address: str | None, ranges: Sequence[str]) -> bool:
    """No ranges: everyone. Otherwise the address must fall in one of them (an unknown address never does)."""
    if not ranges:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(r) for r in ranges)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy — then the right-most
    `X-Forwarded-For` entry that is not itself a trusted proxy."""
    if not peer or not forwarded_for or not allowed(peer, trusted_proxies) or not trusted_proxies:
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not allowed(hop, trusted_proxies):
            return hop
    return peer
