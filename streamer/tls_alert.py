"""What a TLS server says when it refuses this client, for the start-up checks' messages.

With TLS 1.3 a server checks the client's certificate only after the client has finished its
side of the handshake, so a client library sees a refused (or missing) certificate as a closed
or reset connection. Which of the two depends on timing: a client that has already written its
first request gets a reset, and the reset throws away the alert still unread. Reading once,
without writing, on a connection of our own surfaces the alert that says why.
"""

from __future__ import annotations

import asyncio
import ssl

__all__ = ["tls_alert"]


async def tls_alert(host: str, port: int, context: ssl.SSLContext, timeout: float) -> str | None:
    """The TLS alert ``host:port`` sends right after the handshake, if any (None otherwise)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout
        )
    except (OSError, TimeoutError):
        return None
    try:
        await asyncio.wait_for(reader.read(1), min(timeout, 3.0))
    except ssl.SSLError as exc:
        return str(exc.reason or exc)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    return None
