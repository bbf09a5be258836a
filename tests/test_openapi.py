"""/openapi.json: a valid OpenAPI 3.1 document, with every route, that the app keeps to.

schemathesis generates requests from the document, valid ones and invalid ones, and sends
them to the app in-process; every answer must be no 500, with a documented status, content
type, headers and body. The runs are derandomized, so CI sees the same requests every time.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from passes import openapi
from passes.tokens import authentication_token
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Admin
from tests.test_personalization import INFO, enrollable

# Documented status, content type, headers and body.
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# And no 5xx: with a database and a certificate, not even a documented 503.
CHECKS = [not_a_server_error, *CONFORMANCE]
# Per operation and way of authenticating; the whole file takes about half a minute.
EXAMPLES = 40
DOCUMENTED_PREFIXES = ("/wallet/", "/api/", "/healthz", "/openapi.json")
DEVICE = "0123456789abcdef0123456789abcdef"
PUSH_TOKEN = "ab" * 32
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# /api/sign takes a zip as it is: bytes on the wire, like application/octet-stream.
schemathesis.serializer.alias("application/zip", "application/octet-stream")

DOCUMENT = openapi.document()
OPERATIONS = [
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method != "parameters"
]

ROOT = Path(__file__).resolve().parent.parent
# A template no pass uses, so that it can be deleted.
SPARE_TEMPLATE = "spare"


def security_of(method: str, path: str) -> set[str]:
    requirements = DOCUMENT["paths"][path][method.lower()]["security"]
    return {name for requirement in requirements for name in requirement}


def apple_pass_token(identity: dict[str, str]) -> str:
    token = authentication_token(
        SECRET_KEY, identity["passTypeIdentifier"], identity["serialNumber"]
    )
    return f"ApplePass {token}"


@pytest.fixture(scope="module")
def api_app(make_app: Callable[..., Flask]) -> Flask:
    # Generated requests send many wrong tokens; counting them would turn every later answer
    # into a 429. The throttled answer is checked against the document on its own below.
    return make_app(RATELIMIT_ENABLED=False)


@pytest.fixture(scope="module")
def schema(api_app: Flask) -> Any:
    """The document as the app serves it, so what is tested is what clients get."""
    return schemathesis.openapi.from_wsgi("/openapi.json", api_app)


@dataclass
class World:
    """Passes and a device that exist, so generated requests also reach the success paths."""

    passes: list[dict[str, str]]
    device: str
    endpoint: str  # a webhook endpoint's id
    # Operation label to request parts (body, headers) schemathesis uses as they are.
    known: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def path_values(self, identity: dict[str, str] | None = None) -> dict[str, str]:
        """A value for every path parameter: a pass (the first unless given), the device,
        the webhook endpoint."""
        return {
            **(identity or self.passes[0]),
            "deviceLibraryIdentifier": self.device,
            "endpointId": self.endpoint,
            "name": SPARE_TEMPLATE,
        }


@pytest.fixture
def world(api_app: Flask) -> World:
    admin = Admin(api_app.test_client())
    plain = admin.create_pass(serialNumber="plain-1", **{"pass": {"logoText": "Plain"}})
    to_enroll = enrollable(admin)
    enrolled = enrollable(admin)
    identities = [
        {key: created[key] for key in ("passTypeIdentifier", "serialNumber")}
        for created in (plain, to_enroll, enrolled)
    ]
    client = api_app.test_client()
    personalized = client.post(
        f"/wallet/v1/passes/{enrolled['passTypeIdentifier']}/{enrolled['serialNumber']}"
        "/personalize",
        json={"personalizationToken": "token", "requiredPersonalizationInfo": INFO},
    )
    assert personalized.status_code == 200
    for identity in identities:
        registered = client.post(
            f"/wallet/v1/devices/{DEVICE}/registrations/"
            f"{identity['passTypeIdentifier']}/{identity['serialNumber']}",
            headers={"Authorization": apple_pass_token(identity)},
            json={"pushToken": PUSH_TOKEN},
        )
        assert registered.status_code == 201
    signed = admin.get(f"/api/passes/{plain['passTypeIdentifier']}/{plain['serialNumber']}/pkpass")
    endpoint = admin.post("/api/webhooks", json={"url": "https://hooks.example.com/in"})
    spare = admin.put(
        f"/api/templates/{SPARE_TEMPLATE}",
        data=zipped_folder(ROOT / "pass_templates/storecard"),
        content_type="application/zip",
    )
    assert spare.status_code == 201, spare.get_json()
    # Random bodies rarely make a valid pass or a valid enrollment; these do.
    known = {
        "POST /api/passes": {"template": "storecard"},
        "PATCH /api/passes/{passTypeIdentifier}/{serialNumber}": {"pass": {"logoText": "New"}},
        "POST /api/sign": unsigned_package(signed.data),
        "POST /api/bundles": {"passes": identities},
        "POST /wallet/v1/passes/{passTypeIdentifier}/{serialNumber}/personalize": {
            "personalizationToken": "token",
            "requiredPersonalizationInfo": INFO,
        },
        "POST /wallet/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}"
        "/{serialNumber}": {"pushToken": PUSH_TOKEN},
        "POST /wallet/v1/log": {"logs": ["Wallet could not reach the service"]},
        "POST /api/webhooks": {"url": "https://hooks.example.com/more"},
        "PUT /api/templates/{name}": zipped_folder(ROOT / "pass_templates/storecard"),
    }
    extras = {label: [{"body": body}] for label, body in known.items()}
    # A copy newer than any version: the device has it, 304.
    held = {"headers": {"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 GMT"}}
    for method in ("GET", "HEAD"):
        extras[f"{method} /wallet/v1/passes/{{passTypeIdentifier}}/{{serialNumber}}"] = [held]
    return World(passes=identities, device=DEVICE, endpoint=endpoint.get_json()["id"], known=extras)


def zipped_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.writestr(path.relative_to(folder).as_posix(), path.read_bytes())
    return buffer.getvalue()


def unsigned_package(pkpass: bytes) -> bytes:
    """A valid unsigned package from a signed pass, without the big strip images, so that
    Hypothesis can show it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pkpass)) as signed, zipfile.ZipFile(buffer, "w") as package:
        for name in signed.namelist():
            if not name.startswith(("strip", "manifest.json", "signature")):
                package.writestr(name, signed.read(name))
    return buffer.getvalue()


def known_inputs(world: World, operation: Any) -> list[dict[str, Any]]:
    """as_strategy() arguments: the world's passes and device in the path, known parts."""
    extras = world.known.get(operation.label, [])
    names = {parameter.name for parameter in operation.path_parameters}
    if not names:
        return extras
    values = [world.path_values(identity) for identity in world.passes]
    return [
        {"path_parameters": {name: value[name] for name in names}, **extra}
        for value in values
        for extra in [{}, *extras]
    ]


# How a request authenticates: a function that sets (or removes) its Authorization header.
Authorize = Callable[[Any], dict[str, str]]


def exercise(
    api_app: Flask, operation: Any, known: list[dict[str, Any]], authorize: list[Authorize]
) -> set[int]:
    """Generated and known requests, valid and invalid; every answer must keep to the
    document. Returns the statuses seen."""
    strategies = [
        operation.as_strategy(mode, **arguments)
        for mode in GenerationMode
        for arguments in [{}, *known]
    ]
    statuses: set[int] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=st.one_of(strategies), how=st.sampled_from(authorize))
    def check(case: Any, how: Authorize) -> None:
        response = case.call(app=api_app, headers=how(case))
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    check()
    return statuses


def _pass_in_path(case: Any) -> dict[str, str]:
    return {
        name: unquote(case.path_parameters[name]) for name in ("passTypeIdentifier", "serialNumber")
    }


def device_token(case: Any) -> dict[str, str]:
    """The pass's own token for whatever pass the path names (known or generated)."""
    return {"Authorization": apple_pass_token(_pass_in_path(case))}


def another_pass_token(case: Any) -> dict[str, str]:
    identity = _pass_in_path(case)
    return {"Authorization": apple_pass_token({**identity, "serialNumber": "another"})}


def wrong_scheme(case: Any) -> dict[str, str]:
    return {"Authorization": device_token(case)["Authorization"].replace("ApplePass", "Bearer")}


def no_token(case: Any) -> dict[str, str]:
    return {"Authorization": "ApplePass "}


def no_header(case: Any) -> dict[str, str]:
    if case.headers:
        case.headers.pop("Authorization", None)
    return {}


def as_generated(case: Any) -> dict[str, str]:
    """Whatever schemathesis made of the security scheme, if anything."""
    return {}


def admin_token(case: Any) -> dict[str, str]:
    return ADMIN_HEADERS


INVALID_TOKENS = [another_pass_token, wrong_scheme, no_token, no_header, as_generated]


def authorizations(method: str, path: str) -> list[tuple[str, list[Authorize]]]:
    """Admin requests carry the token; device requests the pass's token, or a wrong one."""
    schemes = security_of(method, path)
    if "AdminToken" in schemes:
        return [("admin token", [admin_token])]
    if "ApplePass" in schemes:
        return [("valid token", [device_token]), ("invalid token", INVALID_TOKENS)]
    return [("no auth", [as_generated])]


CASES = [
    pytest.param(method, path, name, authorize, id=f"{method} {path} [{name}]")
    for method, path in OPERATIONS
    for name, authorize in authorizations(method, path)
]


@pytest.mark.parametrize(("method", "path", "name", "authorize"), CASES)
def test_every_operation_keeps_to_the_document(
    api_app: Flask,
    schema: Any,
    world: World,
    method: str,
    path: str,
    name: str,
    authorize: list[Authorize],
) -> None:
    operation = schema[path][method]
    statuses = exercise(api_app, operation, known_inputs(world, operation), authorize)
    # Not only refusals: the run reached what the operation is for (or the refusal under test).
    wanted = {401} if name == "invalid token" else set(range(200, 400))
    assert statuses & wanted, sorted(statuses)


def test_the_document_is_valid_openapi_3_1(api_app: Flask) -> None:
    response = api_app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = response.get_json()
    assert served["openapi"].startswith("3.1.")
    validate(served)  # raises with the offending part when it is not
    assert served == json.loads(json.dumps(DOCUMENT))


def _placeholders(path: str) -> str:
    """Flask's <name> and OpenAPI's {name} both as {}: the names differ on purpose."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def routes(app: Flask) -> Iterator[tuple[str, str]]:
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(DOCUMENTED_PREFIXES):
            for method in sorted(rule.methods - {"OPTIONS"}):
                yield method, _placeholders(rule.rule)


def test_the_document_lists_every_route_and_nothing_else(api_app: Flask) -> None:
    documented = {(method, _placeholders(path)) for method, path in OPERATIONS}
    in_app = set(routes(api_app))
    # Flask answers HEAD for every GET; only the device's HEAD is part of Apple's protocol.
    assert {(m, p) for m, p in in_app if m != "HEAD"} - documented == set(), "undocumented"
    assert documented - in_app == set(), "documented but not routed"


def test_refused_admin_requests_keep_to_the_document(
    schema: Any, world: World, make_app: Callable[..., Flask], api_app: Flask
) -> None:
    disabled = make_app(ADMIN_TOKEN=None)
    throttled = make_app()
    for _ in range(10):  # passes.throttling.WRONG_TOKENS
        wrong = throttled.test_client().get("/api/logs", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
    for method, path in OPERATIONS:
        if "AdminToken" not in security_of(method, path):
            continue
        operation = schema[path][method]
        path_parameters = {
            parameter.name: world.path_values()[parameter.name]
            for parameter in operation.path_parameters
        }
        for app, headers, status in (
            (api_app, {"Authorization": "Bearer not-the-token"}, 401),
            (api_app, {"Authorization": "Basic " + base64.b64encode(b"x:y").decode()}, 401),
            (disabled, ADMIN_HEADERS, 403),
            (throttled, ADMIN_HEADERS, 429),
        ):
            case = operation.Case(path_parameters=path_parameters, headers=headers)
            response = case.call(app=app)
            assert response.status_code == status, (method, path)
            case.validate_response(response, checks=CHECKS)


def test_each_documented_challenge_is_the_one_the_app_sends(
    api_app: Flask, schema: Any, world: World
) -> None:
    """Every documented 401 names its WWW-Authenticate scheme (schemathesis then holds the
    app to it); a request with a token it cannot read gets exactly that challenge."""
    known = world.path_values()
    challenges = {}
    for method, path in OPERATIONS:
        unauthorized = DOCUMENT["paths"][path][method.lower()]["responses"].get("401")
        if unauthorized is None:
            assert not security_of(method, path), (method, path)
            continue
        documented = unauthorized["headers"]["WWW-Authenticate"]["schema"]["const"]
        challenges[method, path] = documented
        operation = schema[path][method]
        case = operation.Case(
            path_parameters={p.name: known[p.name] for p in operation.path_parameters},
            headers={"Authorization": "Unknown scheme"},
        )
        response = case.call(app=api_app)
        assert response.status_code == 401, (method, path)
        assert response.headers.get("www-authenticate") == [documented], (method, path)
    assert set(challenges.values()) == {"Bearer", "ApplePass"}
    assert challenges["GET", "/wallet/v1/passes/{passTypeIdentifier}/{serialNumber}"] == (
        "ApplePass"
    )


def test_without_a_certificate_signing_answers_503_as_documented(
    schema: Any, world: World, make_app: Callable[..., Flask]
) -> None:
    unsigned = make_app(PASS_CERTIFICATE=None, WWDR_CERTIFICATE=None)
    identity = world.passes[0]
    for method, path in [
        ("GET", "/wallet/v1/passes/{passTypeIdentifier}/{serialNumber}"),
        ("GET", "/api/passes/{passTypeIdentifier}/{serialNumber}/pkpass"),
        ("POST", "/api/passes/{passTypeIdentifier}/{serialNumber}/void"),
    ]:
        case = schema[path][method].Case(path_parameters=identity)
        headers = ADMIN_HEADERS if path.startswith("/api") else device_token(case)
        response = case.call(app=unsigned, headers=headers)
        assert response.status_code == 503, (method, path)
        case.validate_response(response, checks=CONFORMANCE)


# Requests that random generation rarely makes but that once answered a 500 (Unicode
# digits, lone surrogates, NUL on PostgreSQL, 1e400, tags past 64 bits): kept as
# regression tests.
SERIALS_PATH = "/wallet/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}"
LATEST_PATH = "/wallet/v1/passes/{passTypeIdentifier}/{serialNumber}"
EDGE_CASES = [
    pytest.param("GET", SERIALS_PATH, {"query": {"passesUpdatedSince": "²"}}, id="tag ²"),
    pytest.param("GET", "/api/passes", {"query": {"limit": "²"}}, id="limit ²"),
    pytest.param("GET", "/api/passes", {"query": {"after": "²"}}, id="after ²"),
    pytest.param(
        "GET",
        "/api/passes",
        {"query": {"after": "9" * 19}},
        id="after 9999999999999999999",
    ),
    pytest.param(
        "POST",
        "/wallet/v1/log",
        {"body": {"logs": ["\ud800"]}},
        id="log \\ud800",
    ),
    pytest.param(
        "PATCH",
        "/api/passes/{passTypeIdentifier}/{serialNumber}",
        {"body": {"pass": {"logoText": "\ud800"}}},
        id="pass data \\ud800",
    ),
    pytest.param(
        "POST",
        "/api/bundles",
        {"body": {"passes": [{"passTypeIdentifier": "\ud800", "serialNumber": "x"}]}},
        id="bundle \\ud800",
    ),
    pytest.param(
        "POST",
        "/wallet/v1/log",
        {"body": {"logs": ["a\x00b"]}},
        id="log NUL",
    ),
    pytest.param(
        "GET",
        "/api/passes/{passTypeIdentifier}/{serialNumber}",
        {"path_parameters": {"serialNumber": "a%00"}},
        id="admin serial NUL",
    ),
    pytest.param(
        "GET",
        LATEST_PATH,
        {"path_parameters": {"serialNumber": "a%00"}},
        id="device serial NUL",
    ),
    pytest.param(
        "GET",
        SERIALS_PATH,
        {"path_parameters": {"deviceLibraryIdentifier": "a%00"}},
        id="device id NUL",
    ),
    pytest.param(
        "POST",
        "/api/bundles",
        {"body": {"passes": [{"passTypeIdentifier": "a\x00", "serialNumber": "x"}]}},
        id="bundle NUL",
    ),
    pytest.param(
        "PATCH",
        "/api/passes/{passTypeIdentifier}/{serialNumber}",
        {"data": b'{"pass": {"foo": 1e400}}'},
        id="pass data 1e400",
    ),
    pytest.param(
        "PATCH",
        "/api/passes/{passTypeIdentifier}/{serialNumber}",
        {"data": b'{"pass": {"userInfo": {"n": ' + b"9" * 401 + b"}}}"},
        id="pass data 401 digits",
    ),
    pytest.param(
        "PATCH",
        "/api/passes/{passTypeIdentifier}/{serialNumber}",
        {"data": b'{"pass": {"userInfo": ' + b"[" * 950 + b"]" * 950 + b"}}"},
        id="pass data nested 950 deep",
    ),
]


@pytest.mark.parametrize(("method", "path", "inputs"), EDGE_CASES)
def test_edge_cases_keep_to_the_document(
    api_app: Flask, schema: Any, world: World, method: str, path: str, inputs: dict[str, Any]
) -> None:
    operation = schema[path][method]
    names = {parameter.name for parameter in operation.path_parameters}
    known = world.path_values()
    path_parameters = {name: known[name] for name in names} | inputs.get("path_parameters", {})
    case = operation.Case(
        path_parameters=path_parameters,
        query=inputs.get("query"),
        body=inputs.get("body", NOT_SET),
        media_type="application/json" if "body" in inputs else None,
    )
    schemes = security_of(method, path)
    headers = ADMIN_HEADERS if "AdminToken" in schemes else {}
    if "ApplePass" in schemes:
        headers = device_token(case)
    # Raw bytes, for JSON that Python's json module would not write (such as 1e400).
    raw = {"data": inputs["data"]} if "data" in inputs else {}
    if raw:
        headers = {**headers, "Content-Type": "application/json"}
    case.validate_response(case.call(app=api_app, headers=headers, **raw), checks=CHECKS)
