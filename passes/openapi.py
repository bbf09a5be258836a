"""/openapi.json, generated from the declarations that also validate every request.

flask-openapi3 builds the document from each view's pydantic models (passes/schemas.py) and
route arguments, and validates the view's parameters and body with the same models before
the view runs. Chosen over spectree, whose responses are JSON models only (no headers, no
binary content types), and over flask-smorest, whose marshmallow schemas give no
patternProperties or `const` and report errors as nested dicts rather than one location:
pydantic writes JSON Schema 2020-12, which is what OpenAPI 3.1 uses, and its error locations
are our JSON paths. What we change of it goes through its documented hooks: the validation
error callback (our 400 with the path), `validate_request()` (device routes authenticate
before their body is read) and Flask's request_class (bodies parsed strictly, below).
tests/test_openapi.py runs schemathesis against the app with this document.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Request, Response, current_app, jsonify
from flask_openapi3 import APIBlueprint, Info, OpenAPI, Tag
from flask_openapi3.models import Schema as OpenApiSchema
from pydantic import ValidationError as PydanticError

from passes.json_body import json_body
from passes.schemas import (
    REF,
    RESPONSE_MODELS,
    Error,
    OpenApiDocument,
    error,
    json_response,
    refusal,
)

INFO = Info(
    title="Pass server",
    version="1",
    description=(
        "Issue Apple Wallet passes and keep them current. `/api` is the admin API "
        "(`Authorization: Bearer <ADMIN_TOKEN>`); `/wallet` is Apple's pass web "
        "service, called by Wallet at the pass's webServiceURL. Errors are JSON "
        '`{"error", "message", "path"?}`. Every response carries '
        "`X-Request-Id` (the one sent, when it is 1 to 64 of `A-Za-z0-9._-`)."
    ),
)
DEVICE_TAG = Tag(name="device", description="Apple's Wallet pass web service (`/wallet`).")
ADMIN_TAG = Tag(name="admin", description="Create, change, inspect and download passes.")
SERVICE_TAG = Tag(name="service", description="Health and this document.")

ADMIN = [{"AdminToken": []}]
APPLE_PASS = [{"ApplePass": []}]
NONE: list[dict[str, list[str]]] = []  # written out by served()
SECURITY_SCHEMES: dict[str, Any] = {
    "AdminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <ADMIN_TOKEN>`. Without ADMIN_TOKEN set, 403.",
    },
    "ApplePass": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "`Authorization: ApplePass <authenticationToken>`: the scheme word `ApplePass`, "
            "a space, then the pass's authenticationToken from its pass.json (an HMAC of "
            "SECRET_KEY, passTypeIdentifier and serialNumber)."
        ),
    },
}
# The WSGI middleware RefuseNul answers any route so.
NUL_IN_QUERY = error("The query string holds a NUL character.")

bp = APIBlueprint("openapi", __name__, abp_tags=[SERVICE_TAG], abp_responses={400: NUL_IN_QUERY})


@bp.get(
    "/openapi.json",
    operation_id="getOpenApiDocument",
    responses={200: json_response(OpenApiDocument, "The OpenAPI 3.1 document.")},
    security=NONE,
)
def openapi_json() -> Response:
    """This document"""
    return jsonify(served(current_app))  # type: ignore[arg-type]


class StrictJSONRequest(Request):
    """flask-openapi3 reads bodies with get_json(silent=True); ours are read strictly.

    Malformed JSON, NaN, numbers past a double, nesting too deep and lone surrogates are a
    400 with what is wrong and where (passes/json_body.py), never a silent None. No body at
    all is None, for the model to accept or refuse.
    """

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not self.get_data(cache=True):
            return None
        return json_body()


def _refuse(error: PydanticError) -> Response:
    raise refusal(error)


def new_app(import_name: str, **flask_options: Any) -> OpenAPI:
    """A Flask app that generates its OpenAPI document and validates with it."""
    app = OpenAPI(
        import_name,
        info=INFO,
        security_schemes=SECURITY_SCHEMES,
        validation_error_status=400,
        validation_error_model=Error,
        validation_error_callback=_refuse,
        doc_ui=False,  # /openapi.json is served below, itself documented
        **flask_options,
    )
    app.request_class = StrictJSONRequest
    return app


def register_apis(app: OpenAPI) -> None:
    """The documented blueprints, in the document's order."""
    from passes import admin, health, webservice

    for api in (webservice.bp, admin.bp, health.bp, bp):
        app.register_api(api)
    for model in RESPONSE_MODELS:
        schema = model.model_json_schema(ref_template=REF)
        for name, definition in schema.pop("$defs", {}).items():
            app.components_schemas[name] = OpenApiSchema(**definition)
        app.components_schemas[model.__name__] = OpenApiSchema(**schema)


def served(app: OpenAPI) -> dict[str, Any]:
    """The document as /openapi.json serves it."""
    document = copy.deepcopy(app.api_doc)
    # Flask answers HEAD for every GET; Wallet's HEAD for the latest pass is part of the
    # protocol, so it is documented as the GET it is answered by.
    from passes.webservice import HEAD_OPERATIONS

    for path, (operation_id, summary) in HEAD_OPERATIONS.items():
        item = document["paths"][path]
        item["head"] = {**item["get"], "operationId": operation_id, "summary": summary}
    # flask-openapi3 leaves out an empty requirement; say it: these need no credentials.
    for item in document["paths"].values():
        for operation in item.values():
            operation.setdefault("security", [])
    return document


def document() -> dict[str, Any]:
    """The whole document, without configuring a service."""
    app = new_app(__name__)
    register_apis(app)
    return served(app)
