"""Cross-site request forgery: a browser's state-changing request must come from Dais's own pages.

A request that a browser could send on its own (a form posted from another site's page, or from
another origin of the same site, which SameSite cookies do not stop) carries the session cookie
the browser holds; one that signs a browser in (sign-in, registering, an invite) would carry the
attacker's choice of identity. So any request with a body-changing method must name an allowed
origin in `Origin` (or, from a browser that omits it, in `Referer`) when it is authenticated by
cookie or signs a browser in. Requests with an `Authorization: Bearer` token are not forgeable by
a page and pass, as do requests without a cookie to routes that do not sign anyone in, and
sign-ins that name no origin at all (no browser sent them).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Routes that sign a browser in: forging them signs the victim in as someone else (login CSRF).
SIGNS_IN = re.compile(
    r"^/(?:api/auth/sign-in|api/invites/accept|invite/[^/]+|api/events/[^/]+/register)$"
)


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, or None when it has none."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginCheck:
    """ASGI middleware refusing forgeable requests with 403 `csrf.origin`."""

    def __init__(self, app: ASGIApp, *, origins: set[str], cookie: str) -> None:
        self.app = app
        self.origins = {origin.lower() for origin in origins}
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        error = Forbidden(
            "csrf.origin", "This request did not come from this site's pages, so it was refused."
        )
        # The body app.main gives every DomainError (this runs outside its exception handlers).
        refusal = JSONResponse({"error": error.to_dict()}, status_code=error.status)
        await refusal(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        if headers.get("authorization", "").lower().startswith("bearer "):
            return True
        cookies = headers.get("cookie", "")
        by_cookie = any(part.strip().startswith(f"{self.cookie}=") for part in cookies.split(";"))
        if not by_cookie and not SIGNS_IN.match(scope["path"]):
            return True
        origin = headers.get("origin")
        if origin is None and "referer" in headers:
            origin = origin_of(headers["referer"]) or "null"
        if origin is None:
            # Every current browser names the origin of a POST, so a request naming none is
            # not a page's: refused when it carries the cookie, let through when it only signs
            # in (a script's `curl`; no browser is involved, so no victim's).
            return not by_cookie
        return origin.rstrip("/").lower() in self.origins
