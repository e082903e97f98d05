"""Where a request came from, as a leaf records it.

The address is the TCP peer's unless the peer is a proxy the operator named
(``BWV_TRUSTED_PROXIES``); only then does uvicorn take the client from ``X-Forwarded-For``.
Whatever the source, a leaf keeps only a parsed IP address: the ledger is permanent, and a
header is text anyone can write.
"""

from __future__ import annotations

import ipaddress

from bwv.base.errors import ConfigError

UNPARSABLE = "unparsable"
_LONGEST = 64  # an IPv6 address with a zone index, generously


def trusted_proxies(setting: str) -> list[str]:
    """The proxies named by ``BWV_TRUSTED_PROXIES``, each an IP address or network; none by
    default. :class:`ConfigError` for anything else, including ``*`` (trusting every peer would
    let any client write its own address)."""
    proxies = []
    for item in (part.strip() for part in setting.split(",")):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"BWV_TRUSTED_PROXIES: {item[:60]!r} is not an IP address or network "
                "(name each proxy, e.g. 10.0.0.5 or 10.0.0.0/29)"
            ) from None
        proxies.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return proxies


def recorded_address(host: str | None) -> str | None:
    """The client address a leaf keeps: the canonical form of an IP address, or
    :data:`UNPARSABLE` for anything else (never the text itself, which may be megabytes)."""
    if host is None:
        return None
    if len(host) > _LONGEST:
        return UNPARSABLE
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return UNPARSABLE
