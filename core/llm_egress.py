"""Where a tenant's LLM base URLs may point: public addresses, the instance's own configured bases,
and what the instance allow-lists (`LLM_ALLOWED_HOSTS`). Loopback, link-local (cloud metadata),
private and other non-public addresses are refused otherwise, so an OWNER/ADMIN of one tenant cannot
make the worker send requests into the service's own network.

Checked when a base URL is saved (a 400 naming the rule) and again at call time on what the host
name resolves to then (a name may be re-pointed after it was saved).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from settings import Settings

# The settable values that are URLs the worker sends requests to.
BASE_NAMES = (
    "OPENAI_API_BASE",
    "OLLAMA_BASE_URL",
    "AZURE_OPENAI_ENDPOINT",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_BASE",
    "DEEPSEEK_API_BASE",
)
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A base URL the rule refuses; the message names the rule and how to allow the address."""


@dataclass(frozen=True)
class Policy:
    hosts: frozenset[str]  # host names (and IP literals) allowed whatever they resolve to
    networks: tuple[_Network, ...]


def policy(settings: Settings) -> Policy:
    """The instance's rule: LLM_ALLOWED_HOSTS (names, addresses, CIDR networks) plus the hosts of
    the base URLs configured instance-wide."""
    hosts: set[str] = set()
    networks: list[_Network] = []
    for entry in (e.strip() for e in settings.llm_allowed_hosts.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(_norm(entry))
    for name in BASE_NAMES:
        value = getattr(settings, name.lower(), None)
        host = urlsplit(value).hostname if isinstance(value, str) and value else None
        if host:
            hosts.add(_norm(host))
    return Policy(frozenset(hosts), tuple(networks))


def _norm(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")


def _host(name: str, url: str) -> str:
    """Raises:
    Refused: not an http(s) URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"{name} must be an http:// or https:// URL with a host")
    return _norm(parts.hostname)


def _refuse(name: str, host: str, address: _Address) -> Refused:
    kind = (
        "loopback"
        if address.is_loopback
        else "link-local"
        if address.is_link_local
        else "private"
        if address.is_private
        else "non-public"
    )
    shown = host if host == str(address) else f"{host} ({address})"
    return Refused(
        f"{name} points at a {kind} address {shown}: LLM base URLs may only point at public addresses "
        "unless the instance allow-lists the host (LLM_ALLOWED_HOSTS)"
    )


def _check_address(name: str, host: str, address: _Address, rule: Policy) -> None:
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    if address.is_global and not address.is_multicast:
        return
    if any(address in net for net in rule.networks if net.version == address.version):
        return
    raise _refuse(name, host, address)


def _literal(host: str) -> _Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str) -> list[_Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check(name: str, url: str, rule: Policy) -> None:
    """A host that does not resolve passes: the request cannot reach it either (and a call made
    later checks again).

    Raises:
        Refused: the URL is not http(s), or its host is (or resolves to) an address the rule refuses.
    """
    host = _host(name, url)
    if host in rule.hosts:
        return
    literal = _literal(host)
    if literal is not None:
        _check_address(name, host, literal, rule)
        return
    try:
        addresses = await _resolve(host)
    except OSError:
        return
    for address in addresses:
        _check_address(name, host, address, rule)
