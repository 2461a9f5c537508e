"""What every route needs from the app: the settings and the store, set once by create_app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from distributor.settings import Settings
from distributor.store import Store


def settings_of(request: Request) -> Settings:
    """The Settings the app was created with (FastAPI dependency)."""
    return request.app.state.settings


def store_of(request: Request) -> Store:
    """The Store the app was created with (FastAPI dependency)."""
    return request.app.state.store


# Route parameters: `store: StoreDep` reads better than a Depends() default.
SettingsDep = Annotated[Settings, Depends(settings_of)]
StoreDep = Annotated[Store, Depends(store_of)]
