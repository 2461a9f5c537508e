"""The operator console at /admin: server-rendered pages over the same domain functions
the CLI uses, one module per kind of page, each page with a JSON twin.

`mount(app)` adds the routes, the login redirect and the console's static files.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from distributor.web.admin import auth, channels, overview, preview, runs, schedules, sources, subscribers, trending
from distributor.web.admin.render import TEMPLATES

# Our own files only (CSP: 'self'); names are fixed so no path from a request is opened.
STATIC = {"admin.css": "text/css", "admin.js": "text/javascript"}


def mount(app: FastAPI) -> None:
    for module in (auth, overview, preview, runs, schedules, subscribers, channels, sources, trending):
        app.include_router(module.router, include_in_schema=False)
    router = APIRouter(prefix="/admin", include_in_schema=False)

    @router.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return FileResponse(
            TEMPLATES / "static" / name, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"}
        )

    app.include_router(router)
    app.add_exception_handler(auth.LoginRequired, auth.login_redirect)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        # Readers who reach the bare address want to subscribe; operators go to /admin.
        return RedirectResponse("/subscribe", status_code=307)
