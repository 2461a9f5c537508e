"""Subscriber tasks: a subscribe request's work, after the web page has answered."""

from __future__ import annotations

from tasks.app import app
from tasks.base import RETRY
from tasks.runtime import context


@app.task(name="tasks.subscribers.sign_up", **RETRY)
def sign_up(signup: dict) -> dict:
    """Store a signup and mail its confirmation (retried while SMTP is temporarily away)."""
    from distributor.signups import Signup, process

    settings, store = context()
    return {"outcome": process(settings, store, Signup.from_dict(signup))}


def queue_signup(signup) -> None:  # noqa: ANN001 - a distributor.signups.Signup
    """The web app's hook (`create_app(on_signup=...)`): queue the signup on the broker."""
    sign_up.delay(signup.as_dict())
