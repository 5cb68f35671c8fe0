"""Every error of the web API is an RFC 9457 problem: ``application/problem+json``.

    HTTP/1.1 404 Not Found
    Content-Type: application/problem+json

    {"type": "https://spoolproxy.dev/problems/not-found", "title": "Not Found",
     "status": 404, "detail": "no route for GET /api/v1/nope"}

A route raises :class:`Problem` (or a subclass that fixes status, slug and title) with
the detail a person needs to act and any extra members a program needs::

    class InsufficientCredit(Problem):
        status, slug, title = 402, "insufficient-credit", "Insufficient credit"

    raise InsufficientCredit(detail="the job costs 1.20, the balance is 0.80", balance=80)

:func:`install` (called by ``create_app``) turns Problem, request validation errors
(422, with an ``errors`` list naming each field), Starlette's HTTP exceptions (404,
405, ...) and unexpected exceptions (500, generic detail, traceback in the log under an
incident id that the response carries) into problem responses.
"""
from __future__ import annotations

import logging
import secrets
from http import HTTPStatus
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("spoolproxy.web")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://spoolproxy.dev/problems/"
_STANDARD = ("type", "title", "status", "detail", "instance")


def type_uri(slug: str) -> str:
    """The problem type URI of a slug: ``not-found`` -> https://spoolproxy.dev/problems/not-found."""
    return TYPE_BASE + slug


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _slug_of(status: int) -> str:
    """``Method Not Allowed`` -> ``method-not-allowed`` (the slug of a plain HTTP error)."""
    return "-".join(_phrase(status).lower().replace("-", " ").split()) or f"http-{status}"


class Problem(Exception):
    """An error the API reports as problem details.

    ``Problem(404, "Unknown user", "no user 'bob'", slug="unknown-user", user="bob")``;
    subclasses set ``status``, ``slug`` and ``title`` as class attributes and are raised
    with only the detail and extra members. Extra members must be JSON-able and must not
    be secrets: they go to the client as they are. ``headers`` are added to the response
    (e.g. ``WWW-Authenticate``, ``Retry-After``)."""

    status: int = 500
    slug: str | None = None  # None: the slug of the status phrase (500 -> internal-server-error)
    title: str | None = None  # None: the status phrase

    def __init__(self, status: int | None = None, title: str | None = None, detail: str | None = None, *,
                 slug: str | None = None, type: str | None = None, instance: str | None = None,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        if status is not None:
            self.status = status
        if not 400 <= self.status <= 599:
            raise ValueError(f"a problem's status must be 4xx or 5xx, not {self.status}")
        self.title = title or self.title or _phrase(self.status)
        self.detail = detail
        self.slug = slug or self.slug or _slug_of(self.status)
        self.type = type or type_uri(self.slug)
        self.instance = instance
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(detail or self.title)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            out["detail"] = self.detail
        if self.instance is not None:
            out["instance"] = self.instance
        for k, v in self.extra.items():
            if k not in _STANDARD:
                out[k] = v
        return out

    def response(self) -> Response:
        return problem_response(self.body(), self.status, self.headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.title!r}, {self.detail!r})"


def problem_response(body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(jsonable_encoder(dict(body)), status_code=status, headers=dict(headers or {}),
                        media_type=MEDIA_TYPE)


# -- the shapes, for the OpenAPI document ---------------------------------------------------


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; a problem type may add members of its own."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(examples=[type_uri("not-found")], description="URI naming the kind of problem")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(None, description="what went wrong this time, for a person")
    instance: str | None = None


class FieldError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    in_: str = Field(alias="in", description="body, query, path, header or cookie")
    field: str = Field(description="the field, dotted (items.0.amount); empty for the whole part")
    message: str
    type: str = Field(description="the kind of error, e.g. missing, int_parsing, json_invalid")


class ValidationProblem(ProblemDetails):
    model_config = ConfigDict(extra="allow", title="ValidationProblem")

    errors: list[FieldError]


# -- handlers ------------------------------------------------------------------------------


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's errors as ``{"in", "field", "message", "type"}``; the rejected input is
    left out (it may be a password)."""
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        where = loc[0] if loc else "body"
        out.append({"in": where, "field": ".".join(loc[1:]), "message": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))})
    return out


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(list(exc.errors()))
    lines = [f"{e['in']}{'.' + e['field'] if e['field'] else ''}: {e['message']}" for e in errors]
    n = len(errors)
    detail = (f"{n} problem{'s' if n != 1 else ''} in the request: " if n else "invalid request") + "; ".join(lines)
    p = Problem(422, "Invalid request", detail, slug="validation-error", errors=errors)
    return p.response()


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status < 400:  # 204, 304 and friends carry no body
        return Response(status_code=status, headers=headers)
    detail = exc.detail if isinstance(exc.detail, str) else None
    extra: dict[str, Any] = {} if isinstance(exc.detail, str) or exc.detail is None else {"info": exc.detail}
    if detail == _phrase(status):
        # Starlette's default detail is the phrase itself; say what was asked instead
        if status == 404:
            detail = f"no resource at {request.url.path}"
        elif status == 405:
            allowed = headers.get("allow") or headers.get("Allow")
            detail = f"{request.method} is not allowed on {request.url.path}" + (
                f" (allowed: {allowed})" if allowed else "")
        else:
            detail = None
    return Problem(status, None, detail, headers=headers, **extra).response()


def internal_error(incident: str) -> Problem:
    return Problem(500, "Internal error",
                   f"the server failed to handle the request; the node's log has the details "
                   f"under incident {incident}", slug="internal-error", incident=incident)


class CatchAll:
    """ASGI middleware: an exception no handler took becomes a logged 500 problem.

    Starlette's own ``Exception`` handler (ServerErrorMiddleware) re-raises after
    answering, so hypercorn would log the same traceback a second time; this one answers
    and stops. When the response had already started there is nothing to answer with:
    it logs and re-raises, and the server drops the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            incident = secrets.token_hex(6)
            log.exception("unexpected error in %s %s (incident %s)", scope.get("method"), scope.get("path"),
                          incident)
            if started:
                raise
            await internal_error(incident).response()(scope, receive, send)


def install(app: FastAPI) -> None:
    """Problem responses for every error of ``app``."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_middleware(CatchAll)


# -- the OpenAPI document ------------------------------------------------------------------

_REF = "#/components/schemas/{model}"


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's OpenAPI document so that it says what the API sends: every 4xx/5xx
    response is ``application/problem+json`` (422: a ValidationProblem), and every
    operation has a ``default`` problem response."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ProblemDetails, ValidationProblem):
        js = model.model_json_schema(ref_template=_REF, by_alias=True)
        for name, sub in js.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[js.get("title", model.__name__)] = js
    problem = {MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}}
    for path in schema.get("paths", {}).values():
        for op in path.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            for code, resp in responses.items():
                if code == "422":
                    resp["description"] = "Invalid request: the errors list names each field"
                    resp["content"] = {MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="ValidationProblem")}}}
                elif code[:1] in ("4", "5"):
                    resp["content"] = problem
            responses.setdefault("default", {"description": "An error, as RFC 9457 problem details",
                                             "content": problem})
    text = repr(schema.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"/{unused}'" not in text:
            components.pop(unused, None)
    return schema
