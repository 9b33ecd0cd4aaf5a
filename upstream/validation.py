"""Reading a JSON request body into a pydantic model, with errors that never echo input.

Invalid JSON is a 400; JSON of the wrong shape is a 422 naming the failing fields and pydantic's
error codes only. Values are left out on purpose: they may be secrets (a password in the wrong
field) or attacker-chosen text that would end up reflected in logs and UIs.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from upstream.responses import Problem

M = TypeVar("M", bound=BaseModel)


MAX_ERRORS = 20  # unknown keys are client-chosen: bound what a single request can make us echo
MAX_FIELD_CHARS = 100


def _field_name(loc: tuple[int | str, ...]) -> str:
    return (".".join(str(part) for part in loc) or "(body)")[:MAX_FIELD_CHARS]


def validation_problem(exc: ValidationError) -> Problem:
    errors = [{"field": _field_name(e["loc"]), "code": e["type"]} for e in exc.errors(include_input=False)]
    errors = errors[:MAX_ERRORS]
    fields = sorted({e["field"] for e in errors})
    return Problem(422, "invalid fields: " + ", ".join(fields), errors=errors)


async def read_model(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Problem(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(
            422, "request body must be a JSON object", errors=[{"field": "(body)", "code": "dict_type"}]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None
