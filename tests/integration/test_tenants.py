"""Tenants and API keys: admin-only management, keys shown once, revocation at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

import sluice
from tests.harness import running_server

app = sluice.App("keys")
ADMIN = "admin-secret-for-tests"


@app.task
async def job() -> None:
    return None


async def test_admin_creates_tenants_and_keys_and_a_revoked_key_stops_at_once(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, app, admin_key=ADMIN) as server:
        admin = {"authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            created = await http.post("/v1/tenants", json={"name": "acme"}, headers=admin)
            assert created.status_code == 201
            tenant = created.json()
            first_key = tenant["api_key"]
            assert first_key.startswith("sk_")

            second = await http.post(f"/v1/tenants/{tenant['id']}/keys", headers=admin)
            assert second.status_code == 201
            second_key, second_id = second.json()["api_key"], second.json()["id"]

            listed = (await http.get(f"/v1/tenants/{tenant['id']}/keys", headers=admin)).json()
            assert len(listed["keys"]) == 2
            assert first_key not in str(listed) and second_key not in str(listed)  # hashed
            names = [
                t["name"] for t in (await http.get("/v1/tenants", headers=admin)).json()["tenants"]
            ]
            assert "acme" in names

            as_tenant = {"authorization": f"Bearer {second_key}"}
            assert (await http.get("/v1/functions", headers=as_tenant)).status_code == 200
            revoked = await http.delete(
                f"/v1/tenants/{tenant['id']}/keys/{second_id}", headers=admin
            )
            assert revoked.status_code == 204
            refused = await http.get("/v1/functions", headers=as_tenant)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_key"
            still = await http.get(
                "/v1/functions", headers={"authorization": f"Bearer {first_key}"}
            )
            assert still.status_code == 200


async def test_admin_routes_are_hidden_from_tenant_keys_and_without_an_admin_key(
    tmp_path: Path,
) -> None:
    # No admin key is configured: the admin routes answer 404 to every key.
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for headers in ({"authorization": f"Bearer {server.api_key}"},
                        {"authorization": "Bearer anything"}):  # fmt: skip
            answer = await http.get("/v1/tenants", headers=headers)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "not_found"
            made = await http.post("/v1/tenants", json={"name": "x"}, headers=headers)
            assert made.status_code == 404


def test_the_client_package_imports_no_server_code() -> None:
    code = (
        "import sys, sluice, sluice.client; "
        "c = sluice.Client('http://127.0.0.1:1', 'sk_x'); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('litestar', 'uvicorn', 'sqlite3') or m.startswith(('sluice.engine', 'sluice.store', "
        "'sluice.api'))); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
