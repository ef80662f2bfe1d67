"""Security headers on every answer of the app it wraps; a content security policy on HTML.

The policy keeps pages on Careline's own origin: no script, style, font or image from anywhere
else (ReDoc's footer, for one, asks for a logo from its CDN; the browser never sends that
request). Inline script and style stay allowed because Swagger UI starts from an inline script
and ReDoc styles itself inline; the web chat has neither, and sets its own policy naming the
sites that may frame it (a policy the page sets is kept).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def page_policy(*, inline: bool = True, frame_ancestors: str = "'none'") -> str:
    """The policy of a Careline page; `inline` for pages that start from inline code."""
    code = "'self' 'unsafe-inline'" if inline else "'self'"
    return (
        f"default-src 'self'; script-src {code}; style-src {code}; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
        f"connect-src 'self'; frame-ancestors {frame_ancestors}; base-uri 'none'; "
        "form-action 'self'"
    )


PAGE_POLICY = page_policy()
ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Pure ASGI (no buffering): adds the headers as the response starts."""

    def __init__(self, app: ASGIApp, *, page_policy: str = PAGE_POLICY) -> None:
        self.app = app
        self.page_policy = page_policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in ALWAYS if k not in present]
                is_page = dict(headers).get(b"content-type", b"").startswith(b"text/html")
                if is_page and b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", self.page_policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
