"""Request bodies in the OpenAPI schema for routes that read their body themselves.

Routes that parse the raw body (signature checks need the exact bytes; forms and JSON
share one handler) get no request body from FastAPI's introspection. `body(...)` states
it, so the schema (and the fuzzing suite built on it, tests/integration/test_api_fuzz.py)
knows what each route takes.
"""

from __future__ import annotations

from typing import Any

# Section and edition choices: a list of names, or one string of names separated by
# spaces or semicolons.
_CHOICES = {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}

PREFERENCES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sections": _CHOICES,
        "editions": _CHOICES,
        "timezone": {"type": "string"},
        "format": {"type": "string", "enum": ["html", "text"]},
        "name": {"type": "string"},
    },
}

SUBSCRIBE: dict[str, Any] = {
    **PREFERENCES,
    "properties": {"email": {"type": "string"}, **PREFERENCES["properties"]},
    "required": ["email"],
}

ARTICLE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "title": {"type": "string"},
        "section": {"type": "string"},
        "published_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}

ARTICLES: dict[str, Any] = {
    "anyOf": [ARTICLE, {"type": "object", "properties": {"articles": {"type": "array", "items": ARTICLE}}, "required": ["articles"]}]
}

PAGEVIEWS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "views": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"url": {"type": "string"}, "count": {"type": "integer"}, "at": {"type": "string"}},
                "required": ["url", "count"],
            },
        }
    },
    "required": ["views"],
}


def body(schema: dict[str, Any], *, form: bool = False) -> dict[str, Any]:
    """`openapi_extra` for a route taking `schema` as JSON (and as a form when `form`)."""
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"requestBody": {"required": True, "content": content}}
