"""The agent API (`/api/v1/`): one NinjaAPI, the routers of each app, and the error shape.

Every error is JSON `{"error": code, "detail": ...}`; bad input is never a 500.
"""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from core.jsonbody import strict_json
from core.jsonlimits import JsonProblem
from deployments.api import ApiKeyRateThrottle, ErrorOut
from deployments.api import router as deployment_router
from deployments.errors import DomainError
from deployments.models import ApiKey
from deployments.services import api_key_confirm
from reviews.api import router as actions_router
from reviews.execution_api import router as execution_router
from reviews.shadow.api import router as shadow_router


class TrustladderAPI(NinjaAPI):
    """The NinjaAPI whose OpenAPI document declares the errors every operation can answer.

    Any authenticated operation can answer 401 (no or a bad key) and 429 (rate limit); any
    operation with a body can answer 400 (malformed JSON), 413 (too big) and 422 (invalid).
    Declared here once, so an operation added later conforms without repeating them (the
    schemathesis suite in tests/fuzz checks every response against this document).
    """

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
        described = {
            400: "Malformed JSON",
            401: "Missing, unknown or revoked API key",
            413: "Request body over 256 KiB",
            422: "Invalid input; `detail` names the field",
            429: "Over the key's rate limit; see Retry-After",
        }
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                codes = []
                if operation.get("security"):
                    codes += [401, 429]
                if "requestBody" in operation:
                    codes += [400, 413, 422]
                elif operation.get("parameters"):
                    codes += [422]  # a path or query parameter out of range
                responses = operation.setdefault("responses", {})
                for code in codes:
                    if code not in responses and str(code) not in responses:
                        responses[code] = {"description": described[code], **error}
        return schema


api = TrustladderAPI(
    title="Trustladder agent API",
    version="1.0.0",
    description="Propose actions, learn what to do with them, report results. See the README.",
    urls_namespace="api",
    parser=strict_json,
    docs_url="/docs",
    throttle=[ApiKeyRateThrottle()],
)
api.add_router("/", execution_router)  # first: POST /actions/batch before /actions/{id} paths
api.add_router("/", actions_router)
api.add_router("/", deployment_router)
api.add_router("/", shadow_router)


def _error(request: HttpRequest, status: int, code: str, detail: Any, **extra: Any) -> HttpResponse:
    key = getattr(request, "auth", None)
    if status != 401 and isinstance(key, ApiKey) and api_key_confirm(key) is None:
        # The key came from the process's cache (POST /actions) and is no longer active: the
        # agent learns that first, as it would have from a key read afresh.
        return on_auth_error(request, AuthenticationError())
    return api.create_response(request, {"error": code, "detail": detail, **extra}, status=status)


def _field_name(loc: list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "payload_in", "data")]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [{"field": _field_name(list(e.get("loc", []))), "message": e.get("msg", "invalid")} for e in exc.errors]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return _error(request, 422, "validation_error", detail, errors=errors)


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(
        request,
        401,
        "unauthorized",
        "send 'Authorization: Bearer <key>' with an active API key of your deployment",
    )
    response["WWW-Authenticate"] = 'Bearer realm="trustladder"'
    return response


@api.exception_handler(JsonProblem)
def on_json_problem(request: HttpRequest, exc: JsonProblem) -> HttpResponse:
    """A body outside core.jsonlimits (NUL, lone surrogate, 1e400, too deep, ...): 422."""
    errors = [{"field": exc.field, "message": exc.message}]
    return _error(request, 422, "validation_error", str(exc), errors=errors)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, JsonProblem):  # raised by the body parser, wrapped by django-ninja
        return on_json_problem(request, exc.__cause__)
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found", 409: "conflict", 429: "rate_limited"}
    return _error(request, exc.status_code, codes.get(exc.status_code, "error"), exc.message)


@api.exception_handler(Throttled)
def on_throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    # django-ninja adds the Retry-After header to this response.
    return _error(request, 429, "rate_limited", "this API key is over its rate limit; retry after Retry-After seconds")


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", str(exc) or "not found")


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return _error(request, exc.http_status, exc.code, exc.detail)


@api.exception_handler(RequestDataTooBig)
def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, 413, "payload_too_large", "the request body is over the 256 KiB limit")
