"""The service's front page, for people who open its address in a browser."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template

from passes.errors import PAGE_HEADERS, prefers_html

bp = Blueprint("pages", __name__, template_folder="templates")


@bp.get("/")
def home() -> Response:
    """What this service is and where to go; API clients keep the 404 they always had."""
    if not prefers_html():
        abort(404)
    response = Response(render_template("pages/home.html"), headers=PAGE_HEADERS)
    response.vary.add("Accept")
    return response
