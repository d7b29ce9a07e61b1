"""Whether a ``base_url`` points at the user's own server or at a hosted API.

An own server (llama.cpp, vLLM, Ollama on this machine, the LAN or a container network)
may have fewer slots than the run's concurrency and queue our calls, so the run asks it
for its slots and makes its first calls alone to compare with. A hosted OpenAI-compatible
API (a public name over HTTPS: Groq, Together, OpenRouter...) answers many calls at once:
those checks would only cost it a few calls made one at a time and a request for a page
it does not have.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

#: name suffixes that never resolve on the public internet
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def own_server(url: str) -> bool:
    """Whether ``url`` is served by the user's own server: plain HTTP, an address that
    is not the public internet's (loopback, private, link-local, a VPN's 100.64/10),
    ``localhost``, a name of one label (a container's service) or under a private
    suffix. A public name over HTTPS is a hosted API."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:  # malformed ("https://[::1/v1"): its calls will say so
        return True
    if parts.scheme == "http" or not host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(_PRIVATE_SUFFIXES)
    return not address.is_global  # loopback, private, link-local, a VPN's shared range
