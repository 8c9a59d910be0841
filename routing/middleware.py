"""JSON errors on the API paths whatever DEBUG says: an MTA or a script reads those answers,
and Django's HTML error pages (the debug page under `make run`) mean nothing to them."""

from __future__ import annotations

import logging

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError

logger = logging.getLogger("django.request")  # where Django logs its own 500s

API_PATHS = ("/api/", "/metrics")
# What Django answers itself with a 4xx: only the rest is a 500 of ours.
CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PATHS)


def as_json(response: HttpResponse) -> JsonResponse:
    """The error `response` as `{"error": ...}` with the same status and headers (Allow)."""
    converted = JsonResponse({"error": response.reason_phrase.lower()})
    converted.status_code = response.status_code
    for name, value in response.items():
        if name.lower() not in ("content-type", "content-length"):
            converted[name] = value
    return converted


class JsonErrorsMiddleware:
    """First in MIDDLEWARE, so that it also sees what the other middleware answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if is_api(request) and response.status_code >= 400 and "json" not in content_type:
            return as_json(response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        """A view's unexpected exception: logged, and a JSON 500 before Django renders a
        page (the debug page of a deep traceback alone takes seconds)."""
        if not is_api(request) or isinstance(exception, CLIENT_ERRORS):
            return None
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return JsonResponse({"error": "internal server error"}, status=500)
