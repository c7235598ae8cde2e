"""The agent API's JSON body parser, shared by every router (config.api installs it)."""

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.parser import Parser


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class StrictJsonParser(Parser):
    """JSON only: NaN and Infinity are refused, and so is anything that is not UTF-8."""

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return json.loads(request.body.decode("utf-8"), parse_constant=_refuse_constant)
        except RequestDataTooBig:
            raise
        except (ValueError, RecursionError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None


strict_json = StrictJsonParser()
