"""Many requests at once: no 5xx, no duplicates, no lost updates (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from flask import Flask

from models import Device, Pass, Registration, db
from tests.conftest import Admin
from tests.test_webservice import PUSH_TOKEN, auth, register, registration_url, serials_url

THREADS = 20
# Rounds of the register/unregister race: enough on PostgreSQL to catch an interleaving that
# hit 82 times in 200; SQLite runs one writer at a time, so a few rounds check the paths.
RACE_ROUNDS = 200
RACE_ROUNDS_SQLITE = 20


def run_together(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action` in `count` threads released at the same moment."""
    start = threading.Barrier(count)

    def run(index: int) -> Any:
        start.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_twenty_devices_registering_at_once_get_one_201_and_one_row(
    app: Flask, admin: Admin
) -> None:
    created = admin.create_pass()

    def register(_: int) -> int:
        response = app.test_client().post(
            registration_url(created), headers=auth(created), json={"pushToken": PUSH_TOKEN}
        )
        return response.status_code

    statuses = Counter(run_together(THREADS, register))
    assert statuses == {201: 1, 200: THREADS - 1}
    with app.app_context():
        assert db.session.query(Registration).count() == 1
        assert db.session.query(Device).count() == 1


def test_concurrent_updates_are_all_reported_and_none_is_lost(app: Flask, admin: Admin) -> None:
    """A device polling while updates commit never misses one (tags follow commit order)."""
    serials = [f"c{i}" for i in range(THREADS)]
    passes = [admin.create_pass(serialNumber=serial) for serial in serials]
    client = app.test_client()
    for pass_ in passes:
        assert client.post(
            registration_url(pass_), headers=auth(pass_), json={"pushToken": PUSH_TOKEN}
        ).status_code in (200, 201)
    tag = client.get(serials_url(passes[0])).get_json()["lastUpdated"]
    seen: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        # The device's view: follow lastUpdated like Wallet does, collecting what it hears.
        nonlocal tag
        poller = app.test_client()
        while not stop.is_set():
            answer = poller.get(serials_url(passes[0]), query_string={"passesUpdatedSince": tag})
            assert answer.status_code in (200, 204)
            if answer.status_code == 200:
                seen.update(answer.get_json()["serialNumbers"])
                tag = answer.get_json()["lastUpdated"]

    poller = threading.Thread(target=poll)
    poller.start()

    def update(index: int) -> int:
        url = f"/api/passes/{passes[index]['passTypeIdentifier']}/{serials[index]}"
        response = app.test_client().patch(
            url, headers=admin.headers, json={"pass": {"logoText": f"v{index}"}}
        )
        return response.status_code

    try:
        statuses = run_together(THREADS, update)
    finally:
        stop.set()
        poller.join(timeout=30)
    assert statuses == [200] * THREADS
    # One last poll picks up whatever committed after the poller's final request.
    final = client.get(serials_url(passes[0]), query_string={"passesUpdatedSince": tag})
    if final.status_code == 200:
        seen.update(final.get_json()["serialNumbers"])
    assert seen == set(serials)
    tags = [
        int(
            admin.get(f"/api/passes/{p['passTypeIdentifier']}/{p['serialNumber']}").get_json()[
                "updateTag"
            ]
        )
        for p in passes
    ]
    assert len(set(tags)) == THREADS  # every update has its own tag


def test_concurrent_patches_to_one_pass_keep_every_change(app: Flask, admin: Admin) -> None:
    created = admin.create_pass()
    url = f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}"

    def patch(index: int) -> int:
        body = {"pass": {"userInfo": {f"k{index}": index}}}
        return app.test_client().patch(url, headers=admin.headers, json=body).status_code

    assert run_together(10, patch) == [200] * 10
    user_info = admin.get(url).get_json()["pass"]["userInfo"]
    assert user_info == {f"k{i}": i for i in range(10)}


def test_unregistering_one_pass_while_registering_another_keeps_the_new_registration(
    app: Flask, admin: Admin
) -> None:
    """Device D holds pass A. At the same moment Wallet unregisters D from A and registers D
    for B, and both are acknowledged: D must end up registered for B, whichever ran first."""
    a, b = admin.create_pass(serialNumber="race-a"), admin.create_pass(serialNumber="race-b")
    with app.app_context():
        postgresql = db.engine.dialect.name == "postgresql"
    rounds = RACE_ROUNDS if postgresql else RACE_ROUNDS_SQLITE
    devices = [f"race{i:04d}".ljust(32, "0") for i in range(rounds)]

    def unregister_a(device: str) -> int:
        return app.test_client().delete(registration_url(a, device), headers=auth(a)).status_code

    def register_b(device: str) -> int:
        return register(app.test_client(), b, device).status_code

    statuses = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for index, device in enumerate(devices):
            assert register(app.test_client(), a, device).status_code == 201
            start = threading.Barrier(2)

            def at_start(
                action: Callable[[str], int], device: str = device, start: Any = start
            ) -> int:
                start.wait(timeout=30)
                return action(device)

            # Both orders: every other round hands the unregister to the pool first.
            order = (unregister_a, register_b) if index % 2 else (register_b, unregister_a)
            futures = {action: pool.submit(at_start, action) for action in order}
            statuses.append((futures[unregister_a].result(), futures[register_b].result()))
    assert set(statuses) == {(200, 201)}
    with app.app_context():
        held = db.session.execute(
            sa.select(Device.device_library_identifier, Pass.serial_number)
            .join(Registration, Registration.device_id == Device.id)
            .join(Pass, Pass.id == Registration.pass_id)
        ).all()
        lost = set(devices) - {device for device, _ in held}
        assert not lost, f"{len(lost)} of {rounds} acknowledged registrations lost"
        assert sorted(held) == [(device, "race-b") for device in devices]


def test_a_patch_answers_with_its_own_update_tag_not_a_later_ones(app: Flask, admin: Admin) -> None:
    """Two PATCHes at once, the first held between its commit and its answer until the second
    has committed: each answer still describes the version its own transaction made."""
    created = admin.create_pass()
    url = f"/api/passes/{created['passTypeIdentifier']}/{created['serialNumber']}"
    patching: set[int] = set()
    committed: list[int] = []
    second_committed = threading.Event()
    lock = threading.Lock()

    def hold_the_first(session: Any) -> None:
        if threading.get_ident() not in patching:
            return
        with lock:
            committed.append(threading.get_ident())
            first = len(committed) == 1
        if first:
            assert second_committed.wait(timeout=30)
        else:
            second_committed.set()

    def patch(index: int) -> dict[str, Any]:
        patching.add(threading.get_ident())
        body = {"pass": {"userInfo": {f"k{index}": index}}}
        response = app.test_client().patch(url, headers=admin.headers, json=body)
        assert response.status_code == 200
        return response.get_json()

    sa.event.listen(db.session, "after_commit", hold_the_first)
    try:
        answers = run_together(2, patch)
    finally:
        sa.event.remove(db.session, "after_commit", hold_the_first)
    assert len(committed) == 2
    tags = [int(answer["updateTag"]) for answer in answers]
    assert tags[0] != tags[1]
    first, second = sorted(range(2), key=lambda i: tags[i])
    assert set(answers[first]["pass"]["userInfo"]) == {f"k{first}"}
    assert set(answers[second]["pass"]["userInfo"]) == {"k0", "k1"}
    stored = admin.get(url).get_json()
    assert int(stored["updateTag"]) == tags[second]
