"""The agent API's JSON body parser, shared by every router (config.api installs it).

Every body is held to core.jsonlimits as it is parsed, so each operation (proposals, results,
outcomes, and any added later) refuses what cannot be stored, served and hashed exactly with a
422 naming the field, before its own validation runs.
"""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.parser import Parser

from core.jsonlimits import JsonProblem, body_check, json_parse


class StrictJsonParser(Parser):
    """JSON only: NaN and Infinity are refused, and so is anything that is not UTF-8."""

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            body = json_parse(request.body.decode("utf-8"))
            body_check(body)
        except RequestDataTooBig:
            raise
        except JsonProblem:
            raise  # a 422 naming the field (config.api; django-ninja wraps it in a 400 it causes)
        except ValueError as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None
        return body


strict_json = StrictJsonParser()
