"""Who may read `/metrics`: the box itself and the networks the clinic lists.

Same rule as `/health/detailed` (the peer address must be loopback), plus `[metrics] allow`.
A request that came through a proxy on the box (it carries a forwarding header) is judged by
the allow list only: otherwise a reverse proxy on loopback would hand the metrics to the LAN.
uvicorn has already replaced the peer with the X-Forwarded-For address from a trusted proxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def networks(allow: Iterable[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(entry, strict=False) for entry in allow)


def may_scrape(
    client: str,
    headers: Mapping[str, str],
    allow: Iterable[IPv4Network | IPv6Network],
) -> bool:
    try:
        address = ip_address(client)
    except ValueError:  # a unix socket peer, a test client's made-up name
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    if mapped is not None:
        address = mapped
    proxied = any(name in headers for name in FORWARDING_HEADERS)
    if address.is_loopback and not proxied:
        return True
    return any(address in network for network in allow if address.version == network.version)
