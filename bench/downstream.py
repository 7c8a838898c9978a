"""A downstream HTTP service for the AIMD benchmark, in its own process:

    python -m bench.downstream PORT CAPACITY SERVICE_MS

It serves CAPACITY requests at once, each for SERVICE_MS, and answers 429 above that.
`POST /capacity` with a number changes the capacity; `GET /stats` answers
{"served", "refused", "capacity"}.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


def main() -> None:
    port, capacity, service_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    state = {"busy": 0, "served": 0, "refused": 0, "capacity": capacity}

    async def work(request: web.Request) -> web.Response:
        await request.read()
        if state["busy"] >= state["capacity"]:
            state["refused"] += 1
            return web.Response(status=429)
        state["busy"] += 1
        try:
            await asyncio.sleep(service_ms / 1000)
        finally:
            state["busy"] -= 1
        state["served"] += 1
        return web.json_response(None)

    async def set_capacity(request: web.Request) -> web.Response:
        state["capacity"] = int(await request.text())
        return web.json_response(state["capacity"])

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({k: state[k] for k in ("served", "refused", "capacity")})

    app = web.Application()
    app.router.add_post("/work", work)
    app.router.add_post("/capacity", set_capacity)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
