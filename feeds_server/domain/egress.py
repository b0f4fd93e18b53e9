"""Where the server may send requests on behalf of an org (webhooks): no internal address.

A webhook URL is chosen by an org admin, so without a check the notifier would post notes, and the
authors' emails, to the server's own loopback, the private network behind it or a cloud metadata
service, and the delivery counts would map which ports answer there. `refusal` says why an address is
off limits; the connection layer (notify/webhook_client.py) applies it to every address a name
resolves to, at connect time, so a name that resolves to 127.0.0.1 or changes its answer after the
URL was saved is caught too. `url_refusal` catches the obvious cases when the URL is saved, for a clear
error; it is a courtesy, not the guard.

The operator may allow ranges (`FEEDS_WEBHOOK_ALLOW_NETWORKS`, e.g. a CRM on the same private
network); cloud metadata addresses stay refused even inside an allowed range.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")

# Instance metadata and host agents of the big clouds: never a CRM, always a way to credentials.
CLOUD_METADATA: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        "169.254.170.2/32",  # AWS ECS task metadata
        "168.63.129.16/32",  # Azure wire server (a public address)
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud
        "fd00:ec2::254/128",  # AWS over IPv6
    )
)

# First match wins (broadcast before the reserved 240/4 that holds it). From the IANA special-purpose
# registries; an address they do not name is still refused when Python does not call it global.
_REFUSED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(n), why)
    for n, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b:1::/48", "private"),
        ("100::/64", "reserved"),
        ("2001::/23", "reserved"),
        ("2001:db8::/32", "reserved"),
        ("3fff::/20", "reserved"),
        ("5f00::/16", "reserved"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "reserved"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NUMERIC_HOST = re.compile(r"[0-9][0-9a-fx.]*", re.IGNORECASE)


def parse_networks(ranges: Iterable[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8`, `fd12::/16` or a single address, as networks (ValueError for anything else)."""
    return tuple(ipaddress.ip_network(r.strip(), strict=False) for r in ranges if r.strip())


def address(text: str) -> Address:
    """An address as a resolver hands it over; an IPv6 zone (`fe80::1%eth0`) is dropped."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, compatible, NAT64, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _own_refusal(ip: Address) -> str | None:
    for network, why in _REFUSED:
        if ip in network:
            return why
    if ip in _NAT64:
        return None  # the gateway reaches the IPv4 address inside, judged on its own
    if ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None if ip.is_global else "not globally routable"


def refusal(ip: Address, allow: Sequence[Network] = ()) -> str | None:
    """Why a webhook may not connect to `ip` (e.g. "loopback"), or None when it may.

    An IPv6 address that carries an IPv4 one (`::ffff:127.0.0.1`, `64:ff9b::a00:1`) is judged by both.
    """
    inner = _embedded_ipv4(ip)
    both = (ip,) if inner is None else (ip, inner)
    if any(a in m for a in both for m in CLOUD_METADATA):
        return "cloud metadata"
    if any(a in n for a in both for n in allow):
        return None
    if inner is not None and (why := _own_refusal(inner)):
        return f"{why} ({inner})"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None  # the connection is made to the IPv4 address, judged just above
    return _own_refusal(ip)


def literal_address(host: str) -> Address | None:
    """The address a URL's host names literally, in every form a resolver reads as one
    (`127.0.0.1`, `[::1]`, and the old `127.1`, `0x7f.0.0.1`, `2130706433`); None for a name."""
    host = host.strip("[]").rstrip(".")
    try:
        return address(host)
    except ValueError:
        pass
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def url_refusal(url: str, allow: Sequence[Network] = ()) -> str | None:
    """Why a webhook URL is refused when it is saved, or None: not http(s), or a literal address that
    `refusal` refuses. A name is judged only when it resolves, at each delivery."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        return "only http and https URLs are allowed"
    literal = literal_address(parts.hostname or "")
    if literal is None:
        return None
    why = refusal(literal, allow)
    return f"{parts.hostname} is not an allowed webhook target: {why}" if why else None
