"""The client's address, for login throttling: the peer, or what a trusted proxy says it is.

``X-Forwarded-For`` is read only when the peer is in ``trusted_proxies`` (empty by default: never).
Its hops are then walked from the right, the nearest to us, skipping those that are trusted
proxies too; the first hop that is not is the client. A client cannot forge its way past this:
whatever it writes into the header stays to the left of the address our proxy appended. An
entry that is not an address ends the walk at the last trusted hop.

``solarfleet serve`` runs uvicorn with ``proxy_headers=False``, so the peer address the app sees
is the connection's own; uvicorn's default (``--forwarded-allow-ips=127.0.0.1``) would let
anything on the machine choose its address.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
UNKNOWN = "unknown"  # a peer without an address (a Unix socket)


@lru_cache(maxsize=16)
def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted_proxies: Iterable[str]
) -> str:
    """The client's address given the peer's, the ``X-Forwarded-For`` header values (in order)
    and the trusted proxies (addresses or networks)."""
    if not peer:
        return UNKNOWN
    trusted = networks(tuple(trusted_proxies))
    here = _parse(peer)
    if not _trusted(here, trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # garbage: believe no further than the last trusted hop
        here = address
        if not _trusted(address, trusted):
            break
    return str(here)
