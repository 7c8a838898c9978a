"""The audit log through the API: administrative and bulk actions are recorded with who,
what, which selector, how many and when; a tenant reads only its own entries, the admin
everyone's."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

import sluice
from sluice.engine.tenants import hash_key
from tests.harness import running_server

app = sluice.App("audited")
ADMIN = "sk_admin_audit-test-only"


@app.task
def report(n: int = 0) -> int:
    return n


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_admin_and_bulk_actions_are_recorded_and_scoped_by_tenant(
    tmp_path: Path, backend: str
) -> None:
    async with (
        running_server(tmp_path, app, backend, admin_key=ADMIN) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        started = time.time()
        admin, mine = auth(ADMIN), auth(server.api_key)
        other = (await http.post("/v1/tenants", json={"name": "other"}, headers=admin)).json()
        theirs = auth(other["api_key"])
        quota = await http.put(
            f"/v1/tenants/{server.tenant_id}/quota", json={"max_queued": 500}, headers=admin
        )
        assert quota.status_code == 200

        for n in range(3):
            spec = {"function": "report", "args": [n], "delay": 3600, "tags": ["nightly"]}
            assert (await http.post("/v1/tasks", json=spec, headers=mine)).status_code == 201
        selector = {"function": ["report"], "tags": ["nightly"]}
        paused = await http.post("/v1/pauses", json={"selector": selector}, headers=mine)
        assert paused.json()["held"] == 3
        lifted = await http.delete(f"/v1/pauses/{paused.json()['id']}", headers=mine)
        assert lifted.json()["released"] == 3
        cancelled = await http.post("/v1/tasks/cancel", json={"selector": selector}, headers=mine)
        assert cancelled.json()["count"] == 3
        put = await http.put("/v1/functions/report", json={"priority": 7}, headers=mine)
        assert put.status_code == 200
        # The other tenant acts too; none of it is this tenant's to see.
        await http.put("/v1/functions/theirs", json={}, headers=theirs)
        await http.post("/v1/tasks/cancel", json={"selector": {}}, headers=theirs)

        page = await http.get("/v1/audit", headers=mine)
        assert page.status_code == 200
        entries = page.json()["entries"]
        actions = [e["action"] for e in entries]
        assert actions == [  # newest first
            "function.put", "tasks.cancel", "pause.delete", "pause.create", "quota.put",
        ]  # fmt: skip
        by_action = {e["action"]: e for e in entries}
        key_id = hash_key(server.api_key)[:16]
        assert by_action["tasks.cancel"]["actor"] == f"key:{key_id}"
        assert by_action["tasks.cancel"]["count"] == 3
        assert '"nightly"' in by_action["tasks.cancel"]["selector"]
        assert by_action["pause.create"]["count"] == 3
        assert by_action["pause.delete"]["count"] == 3
        assert by_action["quota.put"]["actor"] == "admin"
        assert all(started - 1 <= e["at"] <= time.time() + 1 for e in entries)
        assert all(e["tenant_id"] == server.tenant_id for e in entries)
        assert server.api_key not in page.text and other["api_key"] not in page.text

        # A tenant cannot read another's entries by asking for them.
        asked = await http.get("/v1/audit", params={"tenant_id": other["id"]}, headers=mine)
        assert {e["tenant_id"] for e in asked.json()["entries"]} == {server.tenant_id}
        their_page = (await http.get("/v1/audit", headers=theirs)).json()["entries"]
        assert {e["tenant_id"] for e in their_page} == {other["id"]}
        assert [e["action"] for e in their_page] == ["tasks.cancel", "function.put",
                                                    "tenant.create"]  # fmt: skip

        # The admin sees everyone's, filters by action and tenant, and pages.
        everything = (await http.get("/v1/audit", headers=admin)).json()["entries"]
        assert len(everything) == 8
        cancels = await http.get("/v1/audit", params={"action": "tasks.cancel"}, headers=admin)
        assert [e["tenant_id"] for e in cancels.json()["entries"]] == [other["id"],
                                                                      server.tenant_id]  # fmt: skip
        first = (await http.get("/v1/audit", params={"limit": 3}, headers=admin)).json()
        rest = await http.get(
            "/v1/audit", params={"limit": 10, "before": first["next"]}, headers=admin
        )
        paged = first["entries"] + rest.json()["entries"]
        assert [e["id"] for e in paged] == [e["id"] for e in everything]

        bad = await http.get("/v1/audit", params={"action": "DROP TABLE"}, headers=mine)
        assert (bad.status_code, bad.json()["error"]["field"]) == (400, "action")
