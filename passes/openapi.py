"""The OpenAPI 3.1 document of the admin API and Apple's device web service: /openapi.json.

The document is built from the same constants the endpoints check against (length limits,
serial number and file name patterns, page sizes), so a limit changed in the code changes
here too. tests/test_openapi.py runs schemathesis against the app with this document: every
status, content type and JSON body the app answers with must be described here.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify

from models import DEVICE_ID_LENGTH, PASS_TYPE_ID_LENGTH, SERIAL_NUMBER_LENGTH
from passes import admin, bundles, webservice
from passes.building import PACKAGE_FILE_NAME, TEMPLATE_NAME
from passes.signing import PKPASS_MIMETYPE
from passes.store import SERIAL_NUMBER

bp = Blueprint("openapi", __name__)

JSON = "application/json"
Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())


def document() -> dict[str, Any]:
    """The whole OpenAPI document, as a JSON-ready dict."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pass server",
            "version": "1",
            "description": (
                "Issue Apple Wallet passes and keep them current. `/api` is the admin API "
                "(`Authorization: Bearer <ADMIN_TOKEN>`); `/wallet` is Apple's pass web "
                "service, called by Wallet at the pass's webServiceURL. Errors are JSON "
                '`{"error", "message", "path"?}`. Every response carries '
                "`X-Request-Id` (the one sent, when it is 1 to 64 of `A-Za-z0-9._-`)."
            ),
        },
        "tags": [
            {"name": "device", "description": "Apple's Wallet pass web service (`/wallet`)."},
            {"name": "admin", "description": "Create, change, inspect and download passes."},
            {"name": "service", "description": "Health and this document."},
        ],
        "paths": {**_device_paths(), **_admin_paths(), **_service_paths()},
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": SCHEMAS},
    }


# --- building blocks -----------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _full_pattern(pattern: re.Pattern[str]) -> str:
    """A Python regex the code applies with fullmatch(), anchored for JSON Schema."""
    return f"^(?:{pattern.pattern})$"


def _path_parameter(name: str, max_length: int, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        # Each is one path segment: the router never matches a "/" inside it.
        "schema": {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": "^[^/]+$"},
    }


DEVICE = _path_parameter(
    "deviceLibraryIdentifier", DEVICE_ID_LENGTH, "Wallet's identifier of the device."
)
PASS_TYPE = _path_parameter(
    "passTypeIdentifier", PASS_TYPE_ID_LENGTH, "The pass type, e.g. pass.com.example.shop."
)
SERIAL = _path_parameter("serialNumber", SERIAL_NUMBER_LENGTH, "The pass's serial number.")
LIMIT = {
    "name": "limit",
    "in": "query",
    "description": "How many entries to return.",
    "schema": {"type": "integer", "minimum": 1, "maximum": admin.MAX_PAGE, "default": 100},
}


def _json_body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _json(description: str, schema: Schema, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _binary(description: str, media_type: str, headers: Schema | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: Schema | None = None) -> Schema:
    """A response header that is always there."""
    return {"description": description, "required": True, "schema": schema or STRING}


def _error(description: str, headers: Schema | None = None) -> Schema:
    return _json(description, _ref("Error"), headers)


# 401s name a Bearer challenge (see passes/errors.py), device endpoints included.
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": _header("The challenge: `Bearer`.")}
LAST_MODIFIED = _header("When the pass last changed (whole seconds).")


def _device_unauthorized() -> Schema:
    return _error(
        "No `ApplePass` token, a wrong one, or no such pass (answered alike, so serial "
        "numbers cannot be probed).",
        UNAUTHORIZED_HEADERS,
    )


def _unroutable() -> Schema:
    return _error("No route matches the path (a path part is empty or holds a `/`).")


def _too_large(limit: str) -> Schema:
    return _error(f"The body is larger than {limit}.")


def _no_certificate() -> Schema:
    return _error("No pass certificate is configured, so nothing can be signed.")


def _admin_errors(*, pass_in_path: bool = False, reads_body: bool = False) -> Schema:
    """The answers every admin request can get besides its own."""
    errors = {
        "401": _error("Missing or wrong `Authorization: Bearer` token.", UNAUTHORIZED_HEADERS),
        "403": _error("The admin API is disabled: ADMIN_TOKEN is not set."),
        "429": _error(
            "Too many wrong tokens from this address (10 a minute): every admin request from "
            "it waits until the minute has passed."
        ),
    }
    if pass_in_path:
        errors["404"] = _error("No such pass.")
    if reads_body:
        errors["413"] = _too_large("MAX_CONTENT_LENGTH (5 MiB by default)")
    return errors


def _operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: Schema,
    *,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    security: list[Schema] | None = None,
    description: str | None = None,
) -> Schema:
    """An operation object; without `security` it needs no credentials."""
    operation: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    operation["security"] = security if security is not None else []
    operation["responses"] = responses
    return operation


ADMIN = [{"AdminToken": []}]
APPLE_PASS = [{"ApplePass": []}]

SECURITY_SCHEMES = {
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


# --- schemas -------------------------------------------------------------------------------

UPDATE_TAG = {"type": "string", "pattern": "^[0-9]+$", "description": "An update tag."}
PROBLEM = {
    "type": "object",
    "properties": {"path": STRING, "message": STRING, "fix": STRING},
    "required": ["path", "message", "fix"],
    "additionalProperties": False,
}
# Both admit null: `"files": null` is the same as leaving the key out.
FILES = {
    "type": ["object", "null"],
    "description": "File name to base64 content; `null` removes the pass's own file.",
    "patternProperties": {
        _full_pattern(PACKAGE_FILE_NAME): {"type": ["string", "null"], "contentEncoding": "base64"}
    },
    "additionalProperties": {
        "type": "null",
        "description": "Any other name can only be removed (a file kept from a signed package).",
    },
}
PARTIAL_PASS = {
    "type": ["object", "null"],
    "description": (
        "Part of pass.json, merged over the template's (RFC 7396). The service sets "
        "passTypeIdentifier, serialNumber, teamIdentifier, webServiceURL and "
        "authenticationToken itself: sending them is a 400."
    ),
}


def _pass_description(*, with_warnings: bool) -> Schema:
    """What admin.describe() answers; after a change it adds the change's warnings."""
    properties: Schema = {
        "passTypeIdentifier": STRING,
        "serialNumber": STRING,
        "template": {"type": ["string", "null"]},
        "pass": {"type": "object", "description": "The pass's own part of pass.json."},
        "files": {"type": "array", "items": STRING, "description": "The pass's own files."},
        "updateTag": UPDATE_TAG,
        "lastModified": {"type": "string", "description": "HTTP date of the last change."},
        "updatedAt": DATE_TIME,
        "devices": {"type": "integer", "minimum": 0},
        "webServiceURL": {"type": "string", "format": "uri"},
        "personalized": {"type": "boolean"},
        "downloadURL": {"type": "string", "format": "uri"},
    }
    required = list(properties)
    if with_warnings:
        properties["warnings"] = {"type": "array", "items": PROBLEM}
        required.append("warnings")
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _object(properties: Schema, *, required: list[str] | None = None) -> Schema:
    """A closed object: every key it has is described."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "A stable code, e.g. invalid_request."},
            "message": {"type": "string", "description": "What is wrong, for humans."},
            "path": {"type": "string", "description": "Where: a JSON path or a parameter."},
        },
        required=["error", "message"],
    ),
    "InvalidPass": _object(
        {
            "error": {"const": "invalid_pass"},
            "message": STRING,
            "errors": {"type": "array", "items": PROBLEM, "minItems": 1},
            "warnings": {"type": "array", "items": PROBLEM},
        }
    ),
    "Empty": {"type": "object", "maxProperties": 0},
    "Pass": _pass_description(with_warnings=False),
    "ChangedPass": _pass_description(with_warnings=True),
    "PassList": _object(
        {
            "next": {
                "type": ["string", "null"],
                "description": "`after` for the next page; null on the last one.",
            },
            "passes": {
                "type": "array",
                "items": _object(
                    {
                        "passTypeIdentifier": STRING,
                        "serialNumber": STRING,
                        "template": {"type": ["string", "null"]},
                        "updateTag": UPDATE_TAG,
                        "updatedAt": DATE_TIME,
                    }
                ),
            },
        }
    ),
    "Registrations": _object(
        {
            "registrations": {
                "type": "array",
                "items": _object(
                    {
                        "deviceLibraryIdentifier": STRING,
                        "pushTokenPrefix": {
                            "type": "string",
                            "maxLength": 8,
                            "description": "Enough to tell devices apart, not to push.",
                        },
                        "registeredAt": DATE_TIME,
                        "pushPending": {"type": "boolean"},
                    }
                ),
            }
        }
    ),
    "Personalization": _object(
        {
            "requiredPersonalizationInfo": {
                "type": "object",
                "additionalProperties": STRING,
            },
            "personalizedAt": DATE_TIME,
        }
    ),
    "DeviceLogs": _object(
        {
            "logs": {
                "type": "array",
                "items": _object({"message": STRING, "receivedAt": DATE_TIME}),
            }
        }
    ),
    "SerialNumbers": _object(
        {
            "serialNumbers": {"type": "array", "items": STRING, "minItems": 1},
            "lastUpdated": {
                **UPDATE_TAG,
                "description": "Send it back as passesUpdatedSince next time.",
            },
        }
    ),
    "Health": _object(
        {
            "status": {"enum": ["ok", "unhealthy"]},
            "checks": _object(
                {
                    "database": {"enum": ["ok", "unreachable"]},
                    "migrations": STRING,
                    "pushBacklog": {"type": "integer", "minimum": 0},
                    "certificate": {
                        "oneOf": [
                            {"type": "string", "description": "Why there is none."},
                            _object(
                                {
                                    "passTypeIdentifier": STRING,
                                    "expiresAt": DATE_TIME,
                                    "daysToExpiry": {"type": "integer"},
                                }
                            ),
                        ]
                    },
                },
                # Without a database there is nothing to say about migrations or pushes.
                required=["database", "certificate"],
            ),
        }
    ),
}


# --- the device web service ----------------------------------------------------------------

PERSONALIZATION_INFO = {
    "type": "object",
    "properties": {
        key: {"type": "string", "maxLength": webservice.MAX_PERSONALIZATION_VALUE}
        for key in sorted(webservice.PERSONALIZATION_KEYS)
    },
    "additionalProperties": False,
}
DEVICE_BODY_LIMIT = f"{webservice.MAX_BODY // 1024} KiB"


def _device_paths() -> Schema:
    registration = {
        "parameters": [DEVICE, PASS_TYPE, SERIAL],
        "post": _operation(
            "registerDevice",
            "device",
            "Register a device to receive push notifications for a pass",
            {
                "201": _json("The device is now registered for the pass.", _ref("Empty")),
                "200": _json("The device was already registered for the pass.", _ref("Empty")),
                "400": _error(
                    "A path part is too long, the body is not JSON, or pushToken is not an "
                    "APNs device token."
                ),
                "401": _device_unauthorized(),
                "404": _unroutable(),
                "413": _too_large(DEVICE_BODY_LIMIT),
            },
            body=_json_body(
                {
                    "type": "object",
                    "properties": {
                        # passes.apns.is_valid_token
                        "pushToken": {"type": "string", "pattern": "^[0-9a-fA-F]{16,200}$"}
                    },
                    "required": ["pushToken"],
                }
            ),
            security=APPLE_PASS,
        ),
        "delete": _operation(
            "unregisterDevice",
            "device",
            "Unregister a device from a pass",
            {
                "200": _json("Not registered (any more).", _ref("Empty")),
                "400": _error("A path part is too long."),
                "401": _device_unauthorized(),
                "404": _unroutable(),
            },
            security=APPLE_PASS,
        ),
    }
    serials = {
        "parameters": [DEVICE, PASS_TYPE],
        "get": _operation(
            "listChangedSerialNumbers",
            "device",
            "The serial numbers of the device's passes changed since a tag",
            {
                "200": _json("Passes changed since the tag.", _ref("SerialNumbers")),
                "204": {"description": "No pass of this type changed for this device."},
                "400": _error("A path part is too long."),
                "404": _unroutable(),
            },
            parameters=[
                {
                    "name": "passesUpdatedSince",
                    "in": "query",
                    "description": (
                        "The lastUpdated of the previous answer. Without it, or with a tag "
                        "this service did not issue, every registered pass is listed."
                    ),
                    "schema": STRING,
                }
            ],
        ),
    }
    latest_responses = {
        "200": _binary(
            "The signed pass.",
            PKPASS_MIMETYPE,
            {"Last-Modified": LAST_MODIFIED, "Cache-Control": _header("`no-cache`.")},
        ),
        "304": {
            "description": "The device has the current version (If-Modified-Since).",
            # Werkzeug drops Last-Modified from a 304, as RFC 9110 allows.
            "headers": {"Cache-Control": _header("`no-cache`.")},
        },
        "400": _error("A path part is too long."),
        "401": _device_unauthorized(),
        "404": _unroutable(),
        "503": _no_certificate(),
    }
    if_modified_since = {
        "name": "If-Modified-Since",
        "in": "header",
        "description": "The Last-Modified of the copy the device holds.",
        "schema": STRING,
    }
    latest = {
        "parameters": [PASS_TYPE, SERIAL],
        "get": _operation(
            "getLatestPass",
            "device",
            "The latest version of a pass",
            latest_responses,
            parameters=[if_modified_since],
            security=APPLE_PASS,
        ),
        "head": _operation(
            "checkLatestPass",
            "device",
            "Whether a pass changed, without its content",
            latest_responses,
            parameters=[if_modified_since],
            security=APPLE_PASS,
        ),
    }
    personalize = {
        "parameters": [PASS_TYPE, SERIAL],
        "post": _operation(
            "personalizePass",
            "device",
            "Rewards enrollment: store the user's details, sign the personalization token",
            {
                "200": _binary(
                    "The detached PKCS #7 signature of personalizationToken.",
                    "application/octet-stream",
                ),
                "400": _error("A path part is too long, or the body is malformed."),
                "401": _device_unauthorized(),
                "404": _error(
                    "No such pass, it does not offer rewards enrollment, or it is already "
                    "personalized: one answer for all three."
                ),
                "413": _too_large(DEVICE_BODY_LIMIT),
                "503": _no_certificate(),
            },
            description=(
                "Apple lists no Authorization header for this request. When one is sent it "
                "must match; without one, only a pass that offers enrollment and is not yet "
                "personalized can be personalized, once. Only tokens that cannot be read as "
                "a JSON object or array are signed."
            ),
            body=_json_body(
                {
                    "type": "object",
                    "properties": {
                        "personalizationToken": {
                            "type": "string",
                            "pattern": webservice.PERSONALIZATION_TOKEN.pattern,
                        },
                        "requiredPersonalizationInfo": PERSONALIZATION_INFO,
                    },
                    "required": ["personalizationToken", "requiredPersonalizationInfo"],
                }
            ),
            security=[*APPLE_PASS, {}],
        ),
    }
    device_log = {
        "post": _operation(
            "logDeviceMessages",
            "device",
            "Log messages from Wallet about problems with this service",
            {
                "200": _json("Recorded (see GET /api/logs).", _ref("Empty")),
                "400": _error("logs is not a list of strings, or has too many."),
                "413": _too_large(DEVICE_BODY_LIMIT),
            },
            body=_json_body(
                {
                    "type": "object",
                    "properties": {
                        "logs": {
                            "type": "array",
                            "items": STRING,
                            "maxItems": webservice.MAX_LOG_MESSAGES,
                        }
                    },
                    "required": ["logs"],
                }
            ),
        ),
    }
    base = "/wallet/v1"
    return {
        f"{base}/devices/{{deviceLibraryIdentifier}}/registrations/{{passTypeIdentifier}}"
        "/{serialNumber}": registration,
        f"{base}/devices/{{deviceLibraryIdentifier}}/registrations/{{passTypeIdentifier}}": (
            serials
        ),
        f"{base}/passes/{{passTypeIdentifier}}/{{serialNumber}}": latest,
        f"{base}/passes/{{passTypeIdentifier}}/{{serialNumber}}/personalize": personalize,
        f"{base}/log": device_log,
    }


# --- the admin API -------------------------------------------------------------------------

PASS_URL = "/api/passes/{passTypeIdentifier}/{serialNumber}"
INVALID_PASS = _json(
    "Wallet would refuse the pass: every problem, with its fix.", _ref("InvalidPass")
)


def _pass_change(
    operation_id: str, summary: str, body: Schema | None = None, description: str = ""
) -> Schema:
    """void, expire and PATCH: change the pass, push its devices, answer its description."""
    responses = {
        "200": _json("The pass as changed, with the change's warnings.", _ref("ChangedPass")),
        **_admin_errors(pass_in_path=True, reads_body=body is not None),
        "422": INVALID_PASS,
        "503": _no_certificate(),
    }
    if body is not None:
        responses["400"] = _error("The body is malformed.")
    return _operation(
        operation_id,
        "admin",
        summary,
        responses,
        body=body,
        security=ADMIN,
        description=description or None,
    )


def _admin_paths() -> Schema:
    create = _operation(
        "createPass",
        "admin",
        "Create a pass",
        {
            "201": _json("The new pass, with its warnings.", _ref("ChangedPass")),
            "400": _error("The body is malformed, or names no known template."),
            **_admin_errors(reads_body=True),
            "409": _error("A pass with this serial number exists."),
            "422": INVALID_PASS,
            "503": _no_certificate(),
        },
        body=_json_body(
            _object(
                {
                    "template": {
                        "type": ["string", "null"],
                        "pattern": _full_pattern(TEMPLATE_NAME),
                        "description": "A folder of PASS_TEMPLATES_DIR; none: data only.",
                    },
                    "serialNumber": {
                        "type": ["string", "null"],
                        "pattern": _full_pattern(SERIAL_NUMBER),
                        "description": "Default: a random one.",
                    },
                    "pass": PARTIAL_PASS,
                    "files": FILES,
                },
                required=[],
            )
        ),
        security=ADMIN,
    )
    list_passes = _operation(
        "listPasses",
        "admin",
        "Passes, most recently changed first",
        {
            "200": _json("One page of passes.", _ref("PassList")),
            "400": _error("limit or after is out of range."),
            **_admin_errors(),
        },
        parameters=[
            LIMIT,
            {
                "name": "after",
                "in": "query",
                "description": (
                    "The previous page's `next`. A bare updateTag (what this took before) "
                    "lists the passes older than it, skipping any others sharing that tag."
                ),
                "schema": {"type": "string", "pattern": "^[0-9]{1,18}(\\.[0-9]{1,18})?$"},
            },
        ],
        security=ADMIN,
    )
    show = _operation(
        "getPass",
        "admin",
        "A pass: its data, files, update tag and how many devices hold it",
        {"200": _json("The pass.", _ref("Pass")), **_admin_errors(pass_in_path=True)},
        security=ADMIN,
    )
    update = _pass_change(
        "updatePass",
        "Change a pass; its devices are pushed",
        _json_body(
            {
                **_object(
                    {"pass": PARTIAL_PASS, "files": FILES},
                    required=[],
                ),
                "minProperties": 1,
            }
        ),
        "`null` removes a key of pass.json or one of the pass's own files. Arrays such as "
        "headerFields are replaced whole.",
    )
    expire_body = _json_body(
        {
            "type": "object",
            "properties": {
                "expirationDate": {
                    **DATE_TIME,
                    "description": "ISO 8601 with a time zone; default: now.",
                }
            },
        },
        required=False,
    )
    download = _operation(
        "downloadPass",
        "admin",
        "The signed .pkpass",
        {
            "200": _binary(
                "The signed pass.",
                PKPASS_MIMETYPE,
                {
                    "Content-Disposition": _header("attachment; filename=<serial>.pkpass"),
                    "Last-Modified": LAST_MODIFIED,
                },
            ),
            **_admin_errors(pass_in_path=True),
            "503": _no_certificate(),
        },
        security=ADMIN,
    )
    registrations = _operation(
        "listRegistrations",
        "admin",
        "The devices registered for a pass",
        {
            "200": _json("Oldest registration first.", _ref("Registrations")),
            "400": _error("limit is out of range."),
            **_admin_errors(pass_in_path=True),
        },
        parameters=[LIMIT],
        security=ADMIN,
    )
    personalization = _operation(
        "getPersonalization",
        "admin",
        "What the user entered when enrolling through Wallet",
        {
            "200": _json("The user's details (personal data).", _ref("Personalization")),
            **_admin_errors(),
            "404": _error("No such pass, or it has not been personalized."),
        },
        security=ADMIN,
    )
    bundle = _operation(
        "bundlePasses",
        "admin",
        "Several passes in one .pkpasses download",
        {
            "200": _binary(
                "A zip of signed passes; iOS 15 and later add them all at once.",
                bundles.PKPASSES_MIMETYPE,
                {"Content-Disposition": _header("attachment; filename=passes.pkpasses")},
            ),
            "400": _error("passes is not a list of distinct pass identifiers."),
            **_admin_errors(reads_body=True),
            "404": _error("A listed pass does not exist."),
            "503": _no_certificate(),
        },
        body=_json_body(
            {
                "type": "object",
                "properties": {
                    "passes": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": bundles.MAX_PASSES,
                        "uniqueItems": True,
                        "items": _object({"passTypeIdentifier": STRING, "serialNumber": STRING}),
                    }
                },
                "required": ["passes"],
            }
        ),
        security=ADMIN,
    )
    sign = _operation(
        "signPackage",
        "admin",
        "Sign an unsigned pass package with this service's certificate",
        {
            "200": _binary(
                "The signed pass.",
                PKPASS_MIMETYPE,
                {
                    "X-Pass-Warnings": _header(
                        "How many warnings the validation gave.", {"type": "integer"}
                    )
                },
            ),
            "400": _error("The body is not a zip of a pass package with a pass.json."),
            **_admin_errors(reads_body=True),
            "409": _error("store: a pass with this serial number exists."),
            "422": INVALID_PASS,
            "503": _no_certificate(),
        },
        description=(
            "The zip holds pass.json, images and xx.lproj folders (one enclosing folder is "
            "unwrapped). It is validated first; with `store=true` it is kept as a pass "
            "served and updated by this service."
        ),
        parameters=[
            {
                "name": "store",
                "in": "query",
                "description": "Keep the pass (`true` or `1`); anything else signs only.",
                "schema": {"type": "boolean", "default": False},
            }
        ],
        body={
            "required": True,
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        security=ADMIN,
    )
    logs = _operation(
        "listDeviceLogs",
        "admin",
        "Messages Wallet sent to /wallet/v1/log, newest first",
        {
            "200": _json("The newest messages.", _ref("DeviceLogs")),
            "400": _error("limit is out of range."),
            **_admin_errors(),
        },
        parameters=[LIMIT],
        security=ADMIN,
    )
    pass_parameters = [PASS_TYPE, SERIAL]
    return {
        "/api/passes": {"get": list_passes, "post": create},
        PASS_URL: {"parameters": pass_parameters, "get": show, "patch": update},
        f"{PASS_URL}/void": {
            "parameters": pass_parameters,
            "post": _pass_change("voidPass", "Void a pass: Wallet shows it as no longer valid"),
        },
        f"{PASS_URL}/expire": {
            "parameters": pass_parameters,
            "post": _pass_change("expirePass", "Set the pass's expirationDate", expire_body),
        },
        f"{PASS_URL}/pkpass": {"parameters": pass_parameters, "get": download},
        f"{PASS_URL}/registrations": {"parameters": pass_parameters, "get": registrations},
        f"{PASS_URL}/personalization": {"parameters": pass_parameters, "get": personalization},
        "/api/bundles": {"post": bundle},
        "/api/sign": {"post": sign},
        "/api/logs": {"get": logs},
    }


# --- health and this document --------------------------------------------------------------


def _service_paths() -> Schema:
    return {
        "/healthz": {
            "get": _operation(
                "checkHealth",
                "service",
                "Whether the service can do its job",
                {
                    "200": _json(
                        "Database reachable and migrated, certificate valid.", _ref("Health")
                    ),
                    "503": _json("Something is wrong; checks say what.", _ref("Health")),
                },
            )
        },
        "/openapi.json": {
            "get": _operation(
                "getOpenApiDocument",
                "service",
                "This document",
                {
                    "200": _json(
                        "The OpenAPI 3.1 document.",
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                    )
                },
            )
        },
    }
