"""Which URL reaches the running ComfyUI from inside its own process.

ComfyUI can listen on any address, port and scheme; a hard-coded http://127.0.0.1:8188 breaks
every user who changed one of them. These rules turn what the server is bound to into an
address a client on the same machine can connect to.
"""

from __future__ import annotations

import ipaddress
import ssl


def connectable_host(listen_address: str) -> str:
    """Host part of a URL for a server bound to listen_address (first of a comma list)."""
    host = (listen_address or "").split(",")[0].strip().strip("[]")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a host name such as "localhost"
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def base_url(listen_address: str, port: int, tls: bool) -> str:
    """http(s)://host:port of the server, without a trailing slash."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"ComfyUI port {port!r} is not a valid TCP port.")
    scheme = "https" if tls else "http"
    return f"{scheme}://{connectable_host(listen_address)}:{port}"


def loopback_ssl_context() -> ssl.SSLContext:
    """TLS context for calling our own server: its certificate rarely names the loopback host."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
