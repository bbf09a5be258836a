"""A phone that speaks the pass web service, and a pass held by phones, for delivery tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from models import db
from passes import delivery, store
from passes.tokens import authentication_token
from tests.conftest import SECRET_KEY, Admin

PASS_TYPE = "pass.com.example.test"
BASE = "/wallet/v1"


@dataclass
class Phone:
    """One device: registers, lists its changed serials and downloads them as Wallet does."""

    client: FlaskClient
    library_id: str
    push_token: str
    tag: str | None = None  # the lastUpdated it was given

    def _auth(self, serial: str) -> dict[str, str]:
        token = authentication_token(SECRET_KEY, PASS_TYPE, serial)
        return {"Authorization": f"ApplePass {token}"}

    def register(self, serial: str) -> int:
        url = f"{BASE}/devices/{self.library_id}/registrations/{PASS_TYPE}/{serial}"
        response = self.client.post(
            url, headers=self._auth(serial), json={"pushToken": self.push_token}
        )
        return response.status_code

    def list_changed(self) -> list[str]:
        url = f"{BASE}/devices/{self.library_id}/registrations/{PASS_TYPE}"
        query = {"passesUpdatedSince": self.tag} if self.tag else {}
        response = self.client.get(url, query_string=query)
        if response.status_code == 204:
            return []
        assert response.status_code == 200, response.data
        body = response.get_json()
        self.tag = body["lastUpdated"]
        return body["serialNumbers"]

    def fetch(self, serial: str) -> int:
        return self.client.get(
            f"{BASE}/passes/{PASS_TYPE}/{serial}", headers=self._auth(serial)
        ).status_code

    def woken(self) -> list[str]:
        """What Wallet does on a push: list the changed passes, download each."""
        changed = self.list_changed()
        for serial in changed:
            assert self.fetch(serial) == 200
        return changed


def phone(app: Flask, index: int) -> Phone:
    return Phone(app.test_client(), f"phone-{index:04d}", f"{index + 1:064x}")


def create_pass(app: Flask, serial: str) -> None:
    Admin(app.test_client()).create_pass(serialNumber=serial)


def states(app: Flask, serial: str) -> dict[str, str]:
    """{device library id: state} for the devices holding the pass."""
    with app.app_context():
        found = delivery.deliveries_of(store.get_pass(PASS_TYPE, serial))
        db.session.remove()
    return {item.device_library_identifier: str(item.state) for item in found}


def record(app: Flask, serial: str, library_id: str) -> Any:
    with app.app_context():
        found = delivery.deliveries_of(store.get_pass(PASS_TYPE, serial))
        db.session.remove()
    return next(item.delivery for item in found if item.device_library_identifier == library_id)
