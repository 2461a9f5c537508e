"""Serving the web app: bind its socket first, then run uvicorn on it.

uvicorn binds only once its server starts; a taken port then ends uvicorn with a log
line, and when the server runs in a thread (`distributor run`) the process runs on
without its web app. Binding ourselves, at start, turns that into an error the caller
reports before doing anything else.
"""

from __future__ import annotations

import errno
import socket

import uvicorn
from fastapi import FastAPI

from distributor.errors import DistributorError


class BindError(DistributorError, OSError):
    """The web app's address could not be bound (taken, not ours, not permitted)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), as uvicorn would make it; raises BindError."""
    # The same socket uvicorn makes for itself: IPv6 for an address with a colon, and
    # SO_REUSEADDR so a restart is not refused while old connections sit in TIME_WAIT
    # (it never lets two servers listen on one port).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            reason = "the address is in use (another `distributor run` or `web`, or another server?); stop it or choose another --port"
        else:
            reason = exc.strerror or str(exc)
        raise BindError(f"cannot serve the web app on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on the bound `sock` until the process is stopped (blocks)."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
