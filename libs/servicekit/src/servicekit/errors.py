"""problem+json (RFC 9457) errors with stable codes, for every service.

Services raise ``AppError`` subclasses from their use cases; one handler turns them, FastAPI's
validation errors and anything unexpected into ``application/problem+json`` bodies.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """A business error: its class says the HTTP status and the stable code clients branch on."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra
        self.headers: dict[str, str] = {}


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


def problem_body(
    status: int, code: str, title: str, detail: str, *, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The problem+json document (RFC 9457) with our stable ``code``."""
    body: dict[str, Any] = {
        "type": f"https://magam.kr/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status, code, title, detail, instance=instance, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def app_error_body(exc: AppError, instance: str | None = None) -> dict[str, Any]:
    return problem_body(
        exc.status, exc.code, exc.title, exc.detail, instance=instance, field=exc.field, **exc.extra
    )


class FieldError(BaseModel):
    field: str
    code: str
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem+json); ``code`` is stable, ``field`` names the input."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://magam.kr/problems/insufficient-stock",
                    "title": "Not enough left",
                    "status": 409,
                    "code": "insufficient_stock",
                    "detail": "only 1 left",
                    "instance": "/customer/orders",
                    "field": "quantity",
                    "available": 1,
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[FieldError] | None = None


_VALIDATION_EXAMPLE = {
    "type": "https://magam.kr/problems/validation-failed",
    "title": "Invalid request",
    "status": 422,
    "code": "validation_failed",
    "detail": "quantity: Input should be greater than or equal to 1",
    "instance": "/customer/orders",
    "field": "quantity",
    "errors": [
        {
            "field": "quantity",
            "code": "greater_than_equal",
            "message": "Input should be greater than or equal to 1",
        }
    ],
}


def document_problems(app: FastAPI) -> None:
    """Makes the OpenAPI document tell the truth about errors: every 4xx/5xx is problem+json
    (FastAPI would advertise its own validation body, which we never send), with an example."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(
            Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
        )
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["Problem"].pop("$defs", None)
        ref = {"$ref": "#/components/schemas/Problem"}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                for status, response in responses.items():
                    content = response.get("content")
                    if str(status)[0] not in "45" or (
                        content and "HTTPValidationError" not in str(content)
                    ):
                        continue  # a success, or an error body the route documents itself
                    example = (
                        _VALIDATION_EXAMPLE
                        if str(status) == "422"
                        else Problem.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
                    )
                    if str(status) == "422" and "Validation" in response.get("description", ""):
                        response["description"] = "Invalid input (`validation_failed`, `field`)"
                    response["content"] = {PROBLEM_JSON: {"schema": ref, "example": example}}
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_problems(app)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem(
            exc.status,
            exc.code,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers or None,
            field=exc.field,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p != "body"),
                "code": err["type"],
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return problem(
            422,
            "validation_failed",
            "Invalid request",
            f"{first['field']}: {first['message']}" if first["field"] else str(first["message"]),
            instance=request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(
            exc.status_code,
            code,
            str(exc.detail),
            str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    @app.exception_handler(sqlalchemy.exc.OperationalError)
    @app.exception_handler(sqlalchemy.exc.InterfaceError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "database unavailable", extra={"path": request.url.path, "error": repr(exc)[:300]}
        )
        return problem(
            503,
            "database_unavailable",
            "Service unavailable",
            "The database is busy or unreachable. Retry shortly (with the same Idempotency-Key).",
            instance=request.url.path,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem(
            500,
            "internal_error",
            "Internal error",
            "Something went wrong on our side; it was logged. Retry later.",
            instance=request.url.path,
        )
