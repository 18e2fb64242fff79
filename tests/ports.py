"""The one way tests and their helper servers pick a loopback port.

A port the OS just handed out and released: nobody listens there, so a server can take it
(or a test can count on a connection there being refused). Between this call and the bind
another process may take it; callers that cannot afford that retry (tests/pg.py does).
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
