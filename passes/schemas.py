"""Every body and parameter of the admin API and the device web service, declared once.

Each is a pydantic model: flask-openapi3 validates requests with it and writes it into
/openapi.json (passes/openapi.py), so what is checked and what is documented cannot drift
apart. A model says what a request looks like; what a pass may contain is validation.py's
(a `pass` here is any JSON object, checked there and answered 422 with every problem).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from flask import Response, jsonify
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError

from models import (
    DEVICE_ID_LENGTH,
    PASS_TYPE_ID_LENGTH,
    SERIAL_NUMBER_LENGTH,
    WEBHOOK_SECRET_LENGTH,
    WEBHOOK_URL_LENGTH,
)
from passes import webhooks
from passes.apns import DEVICE_TOKEN
from passes.building import PACKAGE_FILE_NAME, TEMPLATE_NAME
from passes.errors import ValidationError
from passes.json_body import whole_number
from passes.store import SERIAL_NUMBER
from passes.validation import parse_w3c_datetime

JSON = "application/json"
Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
# Largest page of a list (admin API).
MAX_PAGE = 500
# Wallet sends small bodies; anything bigger is not Wallet.
MAX_DEVICE_BODY = 16 * 1024
MAX_LOG_MESSAGES = 100
MAX_PERSONALIZATION_VALUE = 256
MAX_PERSONALIZATION_TOKEN = 512
# Apple documents no limit; a bundle is built in memory and signed pass by pass, so keep
# one request bounded.
MAX_BUNDLE = 100


def full_pattern(pattern: re.Pattern[str]) -> str:
    """A regex the code applies with fullmatch(), anchored for JSON Schema and pydantic."""
    return f"^(?:{pattern.pattern})$"


# --- turning pydantic's errors into ours ---------------------------------------------------


class Declared(BaseModel):
    """A part of a request. Known by name, so that an error can quote the field's
    description (pydantic's errors name only the model)."""

    models: ClassVar[dict[str, type[BaseModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Declared.models[cls.__name__] = cls


class Parameters(Declared):
    """Path, query and header parameters: an error names the parameter, not a JSON path."""

    _schemas: ClassVar[dict[Any, dict[str, Any]]] = {}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Built once: flask-openapi3 reads a query's or headers' schema at every request,
        and building it took more time than the rest of a device's request to /wallet."""
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in Parameters._schemas:
            Parameters._schemas[key] = super().model_json_schema(*args, **kwargs)
        return Parameters._schemas[key]


def json_path(location: tuple[int | str, ...]) -> str:
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def refusal(error: PydanticError) -> ValidationError:
    """pydantic's first complaint as our 400, at the JSON path (or parameter) it is about.

    Unknown keys are named together at the object holding them, as before pydantic.
    """
    problems = error.errors(include_url=False)
    unknown = [p for p in problems if p["type"] == "extra_forbidden"]
    if unknown and len(unknown) == len(problems):
        names = sorted(str(p["loc"][-1]) for p in unknown)
        return ValidationError(
            f"unknown keys: {', '.join(names)}", path=json_path(unknown[0]["loc"][:-1])
        )
    first = next(p for p in problems if p["type"] != "extra_forbidden")
    location, message = first["loc"], first["msg"]
    model = Declared.models.get(error.title)
    description = _description(model, location)
    if description:
        message = f"{message} ({description})"
    if model is not None and issubclass(model, Parameters) and location:
        return ValidationError(f"{location[0]}: {message}", path=str(location[0]))
    return ValidationError(message, path=json_path(location))


def _description(model: Any, location: tuple[int | str, ...]) -> str | None:
    """The declared description of the field at `location`, if it has one."""
    description = None
    for part in location:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        fields = model.model_fields.items()
        field = next((f for name, f in fields if (f.alias or name) == part), None)
        if field is None:
            return None
        description, model = field.description, field.annotation
    return description


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """`data` as `model`, or our ValidationError (for callers outside a request's view)."""
    try:
        return model.model_validate(data)
    except PydanticError as error:
        raise refusal(error) from None


# --- parameters ----------------------------------------------------------------------------


def _path_part(max_length: int, description: str) -> Any:
    # Each is one path segment: the router never matches a "/" inside it.
    return Field(min_length=1, max_length=max_length, pattern="^[^/]+$", description=description)


def _whole_number(value: Any) -> Any:
    # A plain ASCII decimal: pydantic alone would take " 5", "+5", "1_0" and "5.0".
    if isinstance(value, str):
        number = whole_number(value)
        if number is None:
            raise PydanticCustomError("whole_number", "must be a whole number")
        return number
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class PassPath(Parameters):
    passTypeIdentifier: str = _path_part(
        PASS_TYPE_ID_LENGTH, "The pass type, e.g. pass.com.example.shop."
    )
    serialNumber: str = _path_part(SERIAL_NUMBER_LENGTH, "The pass's serial number.")


class DevicePath(Parameters):
    deviceLibraryIdentifier: str = _path_part(
        DEVICE_ID_LENGTH, "Wallet's identifier of the device."
    )
    passTypeIdentifier: str = PassPath.model_fields["passTypeIdentifier"]


class RegistrationPath(DevicePath):
    serialNumber: str = PassPath.model_fields["serialNumber"]


class Page(Parameters):
    limit: WholeNumber = Field(100, ge=1, le=MAX_PAGE, description="How many entries to return.")


class PassPage(Page):
    after: str | None = Field(
        None,
        pattern=r"^[0-9]{1,18}(\.[0-9]{1,18})?$",
        description=(
            "The previous page's `next`. A bare updateTag (what this took before) lists the "
            "passes older than it, skipping any others sharing that tag."
        ),
    )


class SerialsQuery(Parameters):
    passesUpdatedSince: str | None = Field(
        None,
        description=(
            "The lastUpdated of the previous answer. Without it, or with a tag this service "
            "did not issue, every registered pass is listed."
        ),
    )


class SignQuery(Parameters):
    store: str | None = Field(
        None,
        description="Keep the pass (`true` or `1`); anything else signs only.",
    )


# --- request bodies ------------------------------------------------------------------------


def sometimes(
    description: str | None = None, *, format: str | None = None, **constraints: Any
) -> Any:
    """A key that is not always there (never null when it is)."""

    def schema(json_schema: dict[str, Any]) -> None:
        json_schema.pop("default", None)
        if format:
            json_schema["format"] = format

    return Field(None, description=description, json_schema_extra=schema, **constraints)


DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
UpdateTag = Annotated[str, Field(pattern="^[0-9]+$", description="An update tag.")]
Url = Annotated[str, Field(json_schema_extra={"format": "uri"})]


class Body(Declared):
    """A JSON request body: closed, and strict about types (JSON has no "5" for 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OpenBody(Declared):
    """A body Wallet sends: keys it may add one day are ignored."""

    model_config = ConfigDict(strict=True)


# Both admit null: `"files": null` is the same as leaving the key out. Names and contents
# are checked where files are decoded (store.decode_files, for the CLI too); the schema
# says what that accepts.
Files = Annotated[
    dict[str, str | None] | None,
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "patternProperties": {
                        full_pattern(PACKAGE_FILE_NAME): {
                            "anyOf": [
                                {"type": "string", "contentEncoding": "base64"},
                                {"type": "null"},
                            ]
                        }
                    },
                    "additionalProperties": {
                        "type": "null",
                        "description": (
                            "Any other name can only be removed (a file kept from a signed "
                            "package)."
                        ),
                    },
                },
                {"type": "null"},
            ],
            "description": "File name to base64 content; `null` removes the pass's own file.",
        }
    ),
]
PARTIAL_PASS = (
    "Part of pass.json, merged over the template's (RFC 7396). The service sets "
    "passTypeIdentifier, serialNumber, teamIdentifier, webServiceURL and "
    "authenticationToken itself: sending them is a 400."
)


class NewPass(Body):
    model_config = ConfigDict(
        openapi_extra={
            "example": {
                "template": "storecard",
                "serialNumber": "member-42",
                "pass": {
                    "storeCard": {
                        "secondaryFields": [{"key": "member", "label": "MEMBER", "value": "Ada"}]
                    }
                },
            }
        }
    )

    template: str | None = Field(
        None,
        pattern=full_pattern(TEMPLATE_NAME),
        description="A template's name (GET /api/templates); none: data only.",
    )
    passTypeIdentifier: str | None = Field(
        None,
        max_length=PASS_TYPE_ID_LENGTH,
        description=(
            "One of the pass types this server has a certificate for (GET /healthz lists "
            "them); may be left out when it has one."
        ),
    )
    serialNumber: str | None = Field(
        None,
        pattern=full_pattern(SERIAL_NUMBER),
        description=(
            f"Up to {SERIAL_NUMBER_LENGTH} letters, digits and `._~:@+=-`; default: a random one."
        ),
    )
    pass_: dict[str, Any] | None = Field(None, alias="pass", description=PARTIAL_PASS)
    files: Files = None


class PassChange(Body):
    model_config = ConfigDict(
        json_schema_extra={"minProperties": 1},
        openapi_extra={
            "example": {
                "pass": {
                    "storeCard": {
                        "headerFields": [
                            {
                                "key": "points",
                                "label": "POINTS",
                                "value": 120,
                                "changeMessage": "points_changed",
                            }
                        ]
                    }
                }
            }
        },
    )

    pass_: dict[str, Any] | None = Field(None, alias="pass", description=PARTIAL_PASS)
    files: Files = None

    @model_validator(mode="after")
    def _something(self) -> PassChange:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", "send `pass` (a partial pass.json) and/or `files`")
        return self


def _date_time(value: str) -> str:
    # The parser validation uses: what passes here is what the pass will accept.
    if parse_w3c_datetime(value) is None:
        raise PydanticCustomError(
            "date_time",
            "must be an ISO 8601 date and time with a time zone, e.g. 2026-12-31T23:59:00Z",
        )
    return value


class Expiry(OpenBody):
    model_config = ConfigDict(openapi_extra={"required": False})

    expirationDate: Annotated[str, AfterValidator(_date_time)] = sometimes(
        "ISO 8601 with a time zone; default: now.",
        format="date-time",
        examples=["2026-12-31T23:59:00Z"],
    )

    @model_validator(mode="before")
    @classmethod
    def _no_body_is_now(cls, data: Any) -> Any:
        return {} if data is None else data


class PassKey(Body):
    passTypeIdentifier: str
    serialNumber: str


class BundleRequest(Body):
    passes: list[PassKey] = Field(
        min_length=1, max_length=MAX_BUNDLE, json_schema_extra={"uniqueItems": True}
    )

    @model_validator(mode="after")
    def _distinct(self) -> BundleRequest:
        keys = [(p.passTypeIdentifier, p.serialNumber) for p in self.passes]
        if len(set(keys)) != len(keys):
            raise PydanticCustomError("listed_twice", "a pass is listed twice")
        return self


class PushTokenBody(OpenBody):
    pushToken: str = Field(
        pattern=full_pattern(DEVICE_TOKEN),
        description="The APNs device token: 16 to 200 hex characters.",
    )


# The fields Wallet's sign-up form can ask for (Apple's PersonalizationDictionary).
def _personal(description: str) -> Any:
    return Field(None, max_length=MAX_PERSONALIZATION_VALUE, description=description)


class PersonalizationInfo(Body):
    emailAddress: str | None = _personal("The user's email address.")
    familyName: str | None = _personal("The user's family name.")
    fullName: str | None = _personal("The user's full name.")
    givenName: str | None = _personal("The user's given name.")
    ISOCountryCode: str | None = _personal("The user's country, as an ISO 3166 code.")
    phoneNumber: str | None = _personal("The user's phone number.")
    postalCode: str | None = _personal("The user's postal code.")


# What we sign with the pass certificate. Apple documents the token only as "The
# personalization token for this request. The server must sign and return the token."
# (PersonalizationDictionary), to be signed with the pass certificate and checked by Wallet
# (Wallet Developer Guide, "Rewards Enrollment"): no alphabet, no length. The danger is the
# signature itself: Wallet trusts a detached signature made with this certificate over a
# manifest.json, which is a JSON object, so anything that could be read as JSON text that
# is an object or array must never be signed. Hence printable ASCII without spaces, not
# starting with "{" or "[": every JSON object or array starts with one of them, after
# optional whitespace or a byte order mark, neither of which is allowed here; there is no
# NUL, so the bytes cannot be JSON in UTF-16 or UTF-32 either; and ASCII is its own UTF-8,
# so the bytes signed are exactly the characters checked. An opaque token (hex, base64, a
# UUID) fits in this with room to spare; should Wallet ever send something else, the 400s
# show in the request log (endpoint=webservice.personalize status=400).
# The first character is [!-~] without "[" (0x5B) and "{" (0x7B); no look-ahead, so that
# JSON Schema and pydantic's regex engine read it alike.
PERSONALIZATION_TOKEN = re.compile(
    rf"[!-Z\\-z|-~][!-~]{{0,{MAX_PERSONALIZATION_TOKEN - 1}}}", re.ASCII
)


class Personalization(OpenBody):
    personalizationToken: str = Field(
        pattern=full_pattern(PERSONALIZATION_TOKEN),
        description=(
            f"Signed and sent back: 1 to {MAX_PERSONALIZATION_TOKEN} printable ASCII "
            "characters without spaces, not starting with { or [."
        ),
    )
    requiredPersonalizationInfo: PersonalizationInfo


class DeviceLog(OpenBody):
    logs: list[str] = Field(max_length=MAX_LOG_MESSAGES)


WebhookEvent = Literal[webhooks.EVENT_TYPES]  # type: ignore[valid-type]


class NewWebhook(Body):
    model_config = ConfigDict(
        openapi_extra={
            "example": {
                "url": "https://backend.example.com/wallet-events",
                "events": ["pass.registered", "pass.unregistered"],
            }
        }
    )

    url: str = Field(
        max_length=WEBHOOK_URL_LENGTH,
        pattern="^https?://",
        json_schema_extra={"format": "uri"},
        description="Where events are POSTed: an http or https URL.",
    )
    events: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="The event types it receives; default: every type.",
    )
    secret: str | None = Field(
        None,
        max_length=WEBHOOK_SECRET_LENGTH,
        description=(
            "Signs every event: `whsec_` and base64 of at least 16 bytes (Standard Webhooks), "
            "or plain text of at least 16 characters; default: one is made and answered once."
        ),
    )

    @field_validator("url")
    @classmethod
    def _reachable(cls, url: str) -> str:
        problem = webhooks.url_problem(url)
        if problem:
            raise PydanticCustomError("webhook_url", problem)
        return url

    @field_validator("secret")
    @classmethod
    def _usable(cls, secret: str | None) -> str | None:
        if secret is not None:
            try:
                webhooks.secret_key(secret)
            except ValueError as error:
                raise PydanticCustomError("webhook_secret", str(error)) from None
        return secret

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[str] | None) -> list[str] | None:
        if events is not None and len(set(events)) != len(events):
            raise PydanticCustomError("listed_twice", "an event type is listed twice")
        return events


class TemplatePath(Parameters):
    name: str = Field(
        pattern=full_pattern(TEMPLATE_NAME),
        description="The template's name: 1 to 64 of A-Z a-z 0-9 _ -.",
    )


class TemplateQuery(Parameters):
    format: Literal["json", "zip"] = Field(
        "json", description="`zip`: the template's folder as a zip, as PUT takes it."
    )


class WebhookPath(Parameters):
    endpointId: WholeNumber = Field(ge=1, description="The endpoint's id, from GET /api/webhooks.")


# --- response bodies -----------------------------------------------------------------------


class Closed(BaseModel):
    """A response body: every key it has is described. Views answer with one, so what they
    send is what the document says."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def answer(self, status: int = 200) -> Response:
        # Keys left out (`sometimes`) stay out rather than being sent as null.
        response = jsonify(self.model_dump(mode="json", by_alias=True, exclude_unset=True))
        response.status_code = status
        return response


class Empty(Closed):
    """{}"""


class Problem(Closed):
    path: str = Field(description="Where, as a JSON path or a file name.")
    message: str
    fix: str


class Error(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="A stable code, e.g. invalid_request.")
    message: str = Field(description="What is wrong, for humans.")
    path: str = sometimes("Where: a JSON path or a parameter.")


class InvalidPass(Closed):
    error: str = Field(json_schema_extra={"const": "invalid_pass"})
    message: str
    errors: list[Problem] = Field(min_length=1)
    warnings: list[Problem]


class PassDescription(Closed):
    """What admin.describe() answers."""

    passTypeIdentifier: str
    serialNumber: str
    template: str | None
    pass_: dict[str, Any] = Field(alias="pass", description="The pass's own part of pass.json.")
    files: list[str] = Field(description="The pass's own files.")
    updateTag: UpdateTag
    lastModified: str = Field(description="HTTP date of the last change.")
    updatedAt: DateTime
    devices: int = Field(ge=0)
    webServiceURL: Url
    personalized: bool
    downloadURL: Url


class ChangedPass(PassDescription):
    """A pass as a change left it, with the change's warnings."""

    warnings: list[Problem]


class PassSummary(Closed):
    passTypeIdentifier: str
    serialNumber: str
    template: str | None
    updateTag: UpdateTag
    updatedAt: DateTime


class PassList(Closed):
    next: str | None = Field(description="`after` for the next page; null on the last one.")
    passes: list[PassSummary]


class DeviceRegistration(Closed):
    deviceLibraryIdentifier: str
    pushTokenPrefix: str = Field(
        max_length=8, description="Enough to tell devices apart, not to push."
    )
    registeredAt: DateTime
    pushPending: bool


class Registrations(Closed):
    registrations: list[DeviceRegistration]


class PersonalizationRecord(Closed):
    requiredPersonalizationInfo: dict[str, str]
    personalizedAt: DateTime


class LogEntry(Closed):
    message: str
    receivedAt: DateTime


class DeviceLogs(Closed):
    logs: list[LogEntry]


class SerialNumbers(Closed):
    serialNumbers: list[str] = Field(min_length=1)
    lastUpdated: UpdateTag = Field(description="Send it back as passesUpdatedSince next time.")


class CertificateInfo(Closed):
    setting: str = Field(description="Where it is configured: PASS_CERTIFICATE, _2, ...")
    passTypeIdentifier: str
    teamIdentifier: str
    inUse: bool = Field(
        description=(
            "Whether it signs and pushes its pass type: of several for one type (a renewal), "
            "the one that expires last."
        )
    )
    expiresAt: DateTime
    daysToExpiry: int = Field(description="Negative: expired.")


class HealthChecks(Closed):
    database: str = Field(json_schema_extra={"enum": ["ok", "unreachable"]})
    # Without a database there is nothing to say about migrations or pushes.
    migrations: str = sometimes()
    pushBacklog: int = sometimes(ge=0)
    certificates: list[CertificateInfo] | str = Field(
        description="Every configured certificate, or why there is none."
    )


class Health(Closed):
    status: str = Field(json_schema_extra={"enum": ["ok", "unhealthy"]})
    checks: HealthChecks


class OpenApiDocument(BaseModel):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class TemplateSummary(Closed):
    name: str
    version: int = Field(ge=1, description="Grows by one with every change.")
    updatedAt: DateTime = Field(description="When the current version was made.")
    source: str = Field(
        json_schema_extra={"enum": ["folder", "upload"]},
        description="`folder`: imported from PASS_TEMPLATES_DIR; `upload`: put here.",
    )
    files: list[str] = Field(description="Its files besides pass.json.")
    passes: int = Field(ge=0, description="How many passes are made from it.")


class TemplateList(Closed):
    templates: list[TemplateSummary]


class TemplateDescription(TemplateSummary):
    pass_: dict[str, Any] = Field(alias="pass", description="Its pass.json.")
    digest: str = Field(description="SHA-256 of its content.")


class ChangedTemplate(TemplateDescription):
    """A template as a put left it."""

    changed: bool = Field(description="false: the content was the current one already.")
    passesUpdated: int = Field(ge=0, description="Passes moved to the new version (pushed).")
    warnings: list[Problem]


class WebhookEndpointInfo(Closed):
    id: str = Field(description="`env` for WEBHOOK_URL, a number for one added here.")
    url: Url = Field(description="Without its query, which may hold the receiver's key.")
    events: list[str] | None = Field(description="The event types it receives; null: all.")
    createdAt: DateTime | None = Field(description="When it was added; null for WEBHOOK_URL.")


class NewWebhookEndpoint(WebhookEndpointInfo):
    secret: str = Field(description="Its signing secret: shown this once.")


class WebhookBacklog(Closed):
    undelivered: int = Field(ge=0, description="Messages not yet delivered.")
    failing: int = Field(ge=0, description="Of those, how many an endpoint already failed.")
    oldestUndeliveredAt: DateTime | None = Field(description="When the oldest was queued.")


class WebhookEndpoints(Closed):
    endpoints: list[WebhookEndpointInfo]
    backlog: WebhookBacklog


class WebhookDelivery(Closed):
    webhookId: str = Field(description="The webhook-id header: the same for every attempt.")
    endpoint: str = Field(description="The endpoint's id (`env` for WEBHOOK_URL).")
    type: str
    queuedAt: DateTime
    attempts: int = Field(ge=0)
    state: str = Field(json_schema_extra={"enum": ["delivered", "failing", "waiting"]})
    lastStatus: int | None = Field(description="The last attempt's HTTP status; null: none.")
    lastError: str | None = Field(description="Why the last attempt failed.")
    deliveredAt: DateTime | None
    nextAttemptAt: DateTime | None = Field(description="When it is tried next, if undelivered.")


class WebhookDeliveries(Closed):
    messages: list[WebhookDelivery]


# --- responses -----------------------------------------------------------------------------

# Every model a response names, for components/schemas (flask-openapi3 collects only those
# it is given as classes).
RESPONSE_MODELS: list[type[BaseModel]] = []


def header(description: str, schema: Schema | None = None) -> Schema:
    """A response header that is always there."""
    return {"description": description, "required": True, "schema": schema or {"type": "string"}}


def json_response(
    model: type[BaseModel], description: str, headers: Schema | None = None
) -> Schema:
    if model not in RESPONSE_MODELS:
        RESPONSE_MODELS.append(model)
    response: Schema = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }
    if headers:
        response["headers"] = headers
    return response


def binary(description: str, media_type: str, headers: Schema | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def error(description: str, headers: Schema | None = None) -> Schema:
    return json_response(Error, description, headers)


def challenge(scheme: str) -> Schema:
    """The WWW-Authenticate header of a 401: exactly the scheme the app names."""
    return {
        "WWW-Authenticate": header(
            f"The challenge: `{scheme}`.", {"type": "string", "const": scheme}
        )
    }


def too_large(limit: str) -> Schema:
    return error(f"The body is larger than {limit}.")


NO_CERTIFICATE = error(
    "No pass certificate is configured (for this pass type), so nothing can be signed."
)
UNROUTABLE = error("No route matches the path (a path part is empty or holds a `/`).")
INVALID_PASS = json_response(
    InvalidPass, "Wallet would refuse the pass: every problem, with its fix."
)
LAST_MODIFIED = header("When the pass last changed (whole seconds).")
