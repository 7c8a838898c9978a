"""The console's pages and actions. Each page function takes (console, request,
session) and answers HTML; `serve` signs people in and out, checks every action's CSRF
token, and turns a client error into the page's error banner with its 4xx status."""

from __future__ import annotations

import datetime
import json
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import msgspec
from litestar import Request, Response

from ..contract import Selector
from ..errors import ClientError, Forbidden, InvalidRequest, TooManyRequests
from ..model import SHARED
from .console import COUNT_CAP, DEAD_SCAN, HEADERS, STATES, Console
from .session import SESSION_S, Session

Req = Request[Any, Any, Any]
Page = Callable[[Console, Req, Session], Awaitable[Response[Any]]]
OVERVIEW_MINUTES = 60
TASK_PAGE = 50
VERBS = ("cancel", "retry", "delete")
SHARE_MINUTES = 5  # the tenants page: shares of the tasks started in the last minutes
REFUSALS = {  # why submits were refused (engine/meters.py's outcomes), in words
    "rejected_backpressure": "over its fair share of the drain rate",
    "rejected_quota": "over its quota",
    "rejected_overload": "the server overloaded",
    "rejected_unavailable": "the server stopping",
    "rejected_invalid": "invalid",
}


def _builtins(value: Any) -> Any:
    """An API answer as plain data for a template (through JSON: raw payloads too)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _redirect(to: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response("", status_code=303, headers={"location": to, **(headers or {})})


def _htmx(request: Req) -> bool:
    return request.headers.get("hx-request") == "true"


async def serve(console: Console, request: Req, page: Page) -> Response[Any]:
    """Run a page as its session, or send the visitor to sign in."""
    if page in PUBLIC:
        return await page(console, request, None)  # type: ignore[arg-type]
    session = await console.session(request)
    if session is None:
        if _htmx(request):  # a live fragment of an ended session: reload to sign in
            return Response("", status_code=401, headers={"hx-redirect": "/ui/signin"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _redirect("/ui/signin?" + urlencode({"next": target}))
    try:
        if request.method == "POST":
            form = await request.form()
            token = form.get("csrf") or request.headers.get("x-csrf-token")
            if not console.sessions.check_csrf(session, token):
                raise Forbidden("this action's form is stale or was not sent by the console; "
                                "reload the page and try again", code="bad_csrf")  # fmt: skip
        return await page(console, request, session)
    except ClientError as exc:
        message = str(exc)
        if _htmx(request):
            html = console.env.get_template("_error.html").render(error=message)
            # An action's answer replaces its own target: show the error there.
            return Response(html, status_code=exc.status, media_type="text/html",
                            headers={**HEADERS, "hx-reswap": "innerHTML"})  # fmt: skip
        return console.render("error.html", session, status=exc.status, error=message,
                              page="error", tenants=await _tenants(console, session))  # fmt: skip


async def _tenants(console: Console, session: Session) -> list[Any]:
    if not session.admin:
        return []
    return [_builtins(t) for t in await console.node.tenants.all()]


async def _render(console: Console, session: Session, name: str, **context: Any) -> Response[str]:
    return console.render(name, session, tenants=await _tenants(console, session), **context)


def _safe_next(value: str | None) -> str:
    """Only a path on this console (never //host or a scheme): no open redirect. Printable
    ASCII without spaces only: browsers drop a tab or a newline (`/\t/host` is `//host`
    to them), and the location header could not carry a newline or non-ASCII anyway."""
    if (
        value and value.startswith("/") and not value.startswith("//") and "\\" not in value
        and value.isascii() and value.isprintable() and " " not in value
    ):  # fmt: skip
        return value
    return "/"


def _cross_site(request: Req) -> bool:
    """Whether a browser says this request came from another site's page (a sign-in form
    posted from elsewhere would sign the visitor in with the other site's key)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host", "")


# -- signing in ------------------------------------------------------------------------


async def signin_page(console: Console, request: Req, _: Session) -> Response[str]:
    # Signed in already: a `#key=` link fills the form but waits for a click (a link
    # from elsewhere must not swap the visitor's session for another tenant's).
    signed_in = await console.session(request) is not None
    return console.render("signin.html", None, next=_safe_next(request.query_params.get("next")),
                          signed_in=signed_in)  # fmt: skip


async def signin(console: Console, request: Req, _: Session) -> Response[str]:
    form = await request.form()
    after = _safe_next(form.get("next"))
    if _cross_site(request):
        return console.render("signin.html", None, status=403, next=after,
                              error="Sign in from this console's own page.")  # fmt: skip
    # As the API counts unknown keys per address (api/limits.py): past the limit, the
    # right key too is refused until the minute is over, so guessing cannot go on here.
    address = request.client.host if request.client else ""
    failures = console.limits.auth_failures
    try:
        failures.check(address)
    except TooManyRequests as exc:
        return console.render("signin.html", None, status=429, next=after, error=str(exc))
    session = await console.sign_in(str(form.get("key") or ""))
    if session is None:
        failures.failed(address)
        wrong = "That key is not a live tenant key or the admin key."
        return console.render("signin.html", None, status=401, next=after, error=wrong)
    value = console.sessions.encode(session)
    return _redirect(after, console.cookie_headers(value, SESSION_S, request))


async def signout(console: Console, request: Req, session: Session) -> Response[str]:
    return _redirect("/ui/signin", console.cookie_headers("", 0, request))


async def switch_tenant(console: Console, request: Req, session: Session) -> Response[str]:
    if not session.admin:
        raise Forbidden("only the admin key may look at other tenants", code="admin_only")
    form = await request.form()
    tenant_id = str(form.get("tenant") or "")
    if tenant_id:
        await console.node.tenants.get(tenant_id)  # 404 if there is none
    switched = msgspec.structs.replace(session, t=tenant_id)
    value = console.sessions.encode(switched)
    return _redirect(
        _safe_next(form.get("next")), console.cookie_headers(value, SESSION_S, request)
    )


# -- overview --------------------------------------------------------------------------


def _series(rows: list[dict[str, Any]], minutes: list[Any]) -> dict[str, list[Any]]:
    """Per-minute charts' data from rollup rows, every minute of the span (quiet ones at 0)."""
    per_minute: dict[float, dict[str, float]] = {m: defaultdict(float) for m in minutes}
    for row in rows:
        slot = per_minute.setdefault(row["minute"], defaultdict(float))
        for k, v in row["counts"].items():
            if isinstance(v, int | float) and k not in ("wait_s", "run_s"):
                slot[k] += v
        if row["counts"].get("wait_s") is not None:
            slot["wait_weighted"] += row["counts"]["wait_s"] * row["counts"]["started"]
    return {
        "t": minutes,
        "submitted": [per_minute[m]["submitted"] for m in minutes],
        "succeeded": [per_minute[m]["succeeded"] for m in minutes],
        "failed": [per_minute[m]["failed"] for m in minutes],
        "dead": [per_minute[m]["dead"] for m in minutes],
        "wait_ms": [
            (per_minute[m]["wait_weighted"] / per_minute[m]["started"] * 1000)
            if per_minute[m]["started"] else None
            for m in minutes
        ],
    }  # fmt: skip


async def _overview_figures(console: Console, request: Req, session: Session) -> dict[str, Any]:
    async def make() -> dict[str, Any]:
        stats = await console.api(request, session, "GET", "/v1/stats",
                                  query={"minutes": OVERVIEW_MINUTES})  # fmt: skip
        data = _builtins(stats)
        # Every minute of the hour, quiet ones at zero, so the charts span the hour.
        last = math.floor(console.node.clock.now() / 60) * 60
        minutes = [last - 60 * i for i in range(OVERVIEW_MINUTES - 1, -1, -1)]
        series = _series(data["minutes"], minutes)
        # Each function's own charts, from the same rollup rows (`/?function=NAME`).
        rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in data["minutes"]:
            rows_of[row["function"]].append(row)
        by_function = {f: _series(rows, minutes) for f, rows in rows_of.items() if f}
        waiting: Counter[str] = Counter()
        for f in data["functions"]:
            f["held"] = sum(n for s, n in f["tasks"].items() if s.startswith("held:"))
            for state, n in f["tasks"].items():
                waiting[state] += n
        oldest = [f["oldest_ready_at"] for f in data["functions"] if f["oldest_ready_at"]]
        dead_recent = sum(series["dead"][-10:])
        dead_before = sum(series["dead"][:-10]) / max(1, len(series["dead"]) - 10) * 10
        return {
            "stats": data, "series": series, "by_function": by_function,
            "waiting": dict(waiting), "oldest_ready_at": min(oldest) if oldest else None,
            "dead_spike": dead_recent >= 5 and dead_recent > 3 * dead_before,
        }  # fmt: skip

    return dict(await console.shared.get(f"overview:{session.t}", make))


async def overview(console: Console, request: Req, session: Session) -> Response[str]:
    if not session.t:
        return await tenants_page(console, request, session)
    figures = await _overview_figures(console, request, session)
    chosen = request.query_params.get("function") or ""
    if chosen:  # one function's charts; the figures above them stay the tenant's
        empty = _series([], figures["series"]["t"])
        figures["charted"] = figures["by_function"].get(chosen, empty)
    else:
        figures["charted"] = figures["series"]
    name = "_overview_live.html" if _htmx(request) else "overview.html"
    return await _render(console, session, name, page="overview", chosen=chosen,
                         chosen_query=urlencode({"function": chosen}), **figures)  # fmt: skip


# -- tasks -----------------------------------------------------------------------------


def _task_filters(params: Any) -> dict[str, Any]:
    """The tasks page's filters, as the list API's query (list fields repeat)."""
    out: dict[str, Any] = {}
    for name in ("function", "state", "tag"):
        values = [v for v in params.getall(name, []) if v]
        if values:
            out[name] = values
    for name in ("key", "priority_min", "priority_max"):
        value = params.get(name)
        if value:
            out[name] = value
    for name in ("created_after", "created_before"):
        value = params.get(name)
        if value:
            out[name] = _epoch(name, value)
    return out


def _epoch(name: str, value: str) -> float:
    """A time filter: epoch seconds, or a date and time in UTC (`2026-12-02T14:30`)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} is a time in UTC (2026-12-02T14:30) or epoch seconds",
                             field=name) from None  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _selector(filters: dict[str, Any]) -> Selector:
    fields = {("tags" if k == "tag" else k): v for k, v in filters.items()}
    try:
        return msgspec.convert(fields, Selector, strict=False).validate()
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"bad filter: {exc}", code="invalid_selector") from exc


async def tasks_page(console: Console, request: Req, session: Session) -> Response[str]:
    params = request.query_params
    filters = _task_filters(params)
    query = {**filters, "limit": TASK_PAGE, "cursor": params.get("cursor") or ""}
    page = _builtins(await console.api(request, session, "GET", "/v1/tasks", query=query))
    functions = sorted((await console.node.functions.of(session.t)).keys())
    more = urlencode({**filters, "cursor": page["next"]}, doseq=True) if page["next"] else None
    name = "_task_rows.html" if _htmx(request) and params.get("cursor") else "tasks.html"
    return await _render(
        console, session, name, page="tasks", tasks=page["tasks"], more=more,
        filters=filters, filter_query=urlencode(filters, doseq=True), states=STATES,
        functions=functions, verbs=VERBS,
    )  # fmt: skip


def _form_filters(form: Any) -> dict[str, Any]:
    return _task_filters(form)


async def tasks_count(console: Console, request: Req, session: Session) -> Response[str]:
    form = await request.form()
    verb = str(form.get("verb") or "")
    if verb not in VERBS:
        raise InvalidRequest("the action is cancel, retry or delete", field="verb")
    filters = _form_filters(form)
    count = await console.node.tasks.count(session.t, _selector(filters), COUNT_CAP)
    return console.render(
        "_bulk_confirm.html", session, verb=verb, count=count, capped=count >= COUNT_CAP,
        filters=filters, filter_query=urlencode(filters, doseq=True),
    )  # fmt: skip


async def tasks_bulk(console: Console, request: Req, session: Session) -> Response[str]:
    form = await request.form()
    verb = str(form.get("verb") or "")
    if verb not in VERBS:
        raise InvalidRequest("the action is cancel, retry or delete", field="verb")
    filters = _form_filters(form)
    selector = msgspec.to_builtins(_selector(filters))
    done = _builtins(await console.api(request, session, "POST", f"/v1/tasks/{verb}",
                                       body={"selector": selector}))  # fmt: skip
    count = next(iter(done.values())) if isinstance(done, dict) else done
    return console.render("_bulk_done.html", session, verb=verb, count=count,
                          filter_query=urlencode(filters, doseq=True))  # fmt: skip


# -- one task --------------------------------------------------------------------------


async def _task(console: Console, request: Req, session: Session, task_id: str) -> dict[str, Any]:
    view = await console.api(request, session, "GET", "/v1/tasks/{task_id}",
                             params={"task_id": task_id})  # fmt: skip
    task: dict[str, Any] = _builtins(view)
    notes = await console.api(request, session, "GET", "/v1/tasks/{task_id}/notifications",
                              params={"task_id": task_id})  # fmt: skip
    task["notifications"] = _builtins(notes)["notifications"]
    task["pretty"] = {
        k: json.dumps(task[k], indent=2, ensure_ascii=False) for k in ("args", "kwargs", "result")
    }
    return task


async def task_page(console: Console, request: Req, session: Session) -> Response[str]:
    task_id = request.path_params["task_id"]
    task = await _task(console, request, session, task_id)
    name = "_task_live.html" if _htmx(request) else "task.html"
    return await _render(console, session, name, page="tasks", task=task,
                         waterfall=_waterfall(task))  # fmt: skip


def _waterfall(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Each attempt's stages as bars on one time axis, in percent of the whole span."""
    start = task["created_at"]
    ends = [start]
    for a in task["attempts"]:
        ends += [v for v in (a.get("finished_at"), a.get("recorded_at"), a.get("started_at")) if v]
    end = max(ends)
    span = max(end - start, 1e-6)
    rows = []
    for a in task["attempts"]:
        marks = [
            ("queued", a.get("ready_at"), a.get("dispatched_at")),
            ("dispatched", a.get("dispatched_at"), a.get("started_at")),
            ("running", a.get("started_at"), a.get("finished_at")),
            ("reporting", a.get("finished_at"), a.get("recorded_at")),
        ]
        bars = []
        for stage, begin, finish in marks:
            if begin is None or finish is None or finish < begin:
                continue
            bars.append({
                "stage": stage, "left": (begin - start) / span * 100,
                "width": max((finish - begin) / span * 100, 0.3), "seconds": finish - begin,
            })  # fmt: skip
        held = a.get("held_s")
        rows.append({"attempt": a["attempt"], "outcome": a["outcome"], "bars": bars,
                     "held_s": held})  # fmt: skip
    return rows


async def task_logs(console: Console, request: Req, session: Session) -> Response[str]:
    task_id = request.path_params["task_id"]
    params = request.query_params
    query = {k: params.get(k) for k in ("attempt", "level", "q", "cursor") if params.get(k)}
    page = _builtins(await console.api(request, session, "GET", "/v1/tasks/{task_id}/logs",
                                       params={"task_id": task_id},
                                       query={**query, "limit": 500}))  # fmt: skip
    state = _builtins(await console.node.tasks.get(session.t, task_id)).get("state")
    follow = state not in ("succeeded", "dead", "cancelled", "expired") or page["more"]
    rest = {k: v for k, v in query.items() if k != "cursor"}
    next_url = f"/ui/tasks/{quote(task_id)}/logs?" + urlencode({**rest, "cursor": page["next"]})
    return console.render("_log_lines.html", session, lines=page["lines"], next_url=next_url,
                          follow=follow, first="cursor" not in query)  # fmt: skip


async def task_action(console: Console, request: Req, session: Session) -> Response[str]:
    task_id, verb = request.path_params["task_id"], request.path_params["verb"]
    if verb not in VERBS:
        raise InvalidRequest("the action is cancel, retry or delete", field="verb")
    params = {"task_id": task_id}
    if verb == "delete":
        await console.api(request, session, "DELETE", "/v1/tasks/{task_id}", params=params)
        return _redirect("/ui/tasks", {"hx-redirect": "/ui/tasks"})
    await console.api(request, session, "POST", f"/v1/tasks/{{task_id}}/{verb}", params=params)
    to = f"/ui/tasks/{quote(task_id)}"
    return _redirect(to, {"hx-redirect": to})


# -- dead letters ----------------------------------------------------------------------


def _error_type(error: str | None) -> str:
    if not error:
        return "(no error)"
    head = error.split(":", 1)[0].strip()
    return head if head and " " not in head and len(head) <= 80 else error[:80]


async def dead_page(console: Console, request: Req, session: Session) -> Response[str]:
    tasks: list[dict[str, Any]] = []
    after = ""
    while len(tasks) < DEAD_SCAN:
        page = _builtins(await console.api(request, session, "GET", "/v1/dead",
                                           query={"after": after, "limit": 1000}))  # fmt: skip
        tasks += page["tasks"]
        if not page["next"]:
            break
        after = page["next"]
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for t in tasks[:DEAD_SCAN]:
        key = (t["function"], t.get("error_type") or _error_type(t["error"]))
        group = groups.setdefault(key, {"function": key[0], "error_type": key[1], "ids": [],
                                        "example": t, "last": t["finished_at"]})  # fmt: skip
        group["ids"].append(t["id"])
        group["last"] = max(group["last"] or 0, t["finished_at"] or 0)
    ordered = sorted(groups.values(), key=lambda g: -len(g["ids"]))
    scanned, capped = len(tasks[:DEAD_SCAN]), len(tasks) >= DEAD_SCAN
    return await _render(console, session, "dead.html", page="dead", groups=ordered,
                         scanned=scanned, capped=capped)  # fmt: skip


async def dead_retry(console: Console, request: Req, session: Session) -> Response[str]:
    form = await request.form()
    ids = [i for i in str(form.get("ids") or "").split(",") if i][:DEAD_SCAN]
    retried = await console.node.tasks.retry_ids(session.t, ids)
    await console.node.audit.record(console.caller(session).actor, session.t, "dead.retry",
                                    count=retried)  # fmt: skip
    return console.render("_bulk_done.html", session, verb="retry", count=retried,
                          filter_query="state=ready")  # fmt: skip


# -- functions, workers, tenants -------------------------------------------------------


async def functions_page(console: Console, request: Req, session: Session) -> Response[str]:
    listed = _builtins(await console.api(request, session, "GET", "/v1/functions",
                                         query={"limit": 1000}))  # fmt: skip
    functions = [
        _builtins(await console.api(request, session, "GET", "/v1/functions/{name}",
                                    params={"name": f["name"]}))
        for f in listed["functions"]
    ]  # fmt: skip
    history = console.node.limit_history.of(session.t)
    charts = {f: {"t": [p[0] for p in pts], "limit": [p[1] for p in pts],
                  "inflight": [p[2] for p in pts]} for f, pts in history.items()}  # fmt: skip
    return await _render(console, session, "functions.html", page="functions",
                         functions=functions, charts=charts)  # fmt: skip


async def workers_page(console: Console, request: Req, session: Session) -> Response[str]:
    rows = []
    for conn in console.node.registry:
        if conn.closed or (conn.tenant_id != session.t and not session.admin):
            continue
        if session.admin and session.t and conn.tenant_id not in (session.t, SHARED):
            continue  # the tenant's workers, and the shared pools that serve it too
        rows.append({
            "id": conn.worker_id, "tenant": conn.tenant_id, "slots": conn.slots,
            "busy": len(conn.inflight), "free": conn.free, "functions": list(conn.functions),
            "last_seen": conn.last_seen, "draining": conn.draining, "version": conn.version,
        })  # fmt: skip
    name = "_workers_live.html" if _htmx(request) else "workers.html"
    return await _render(console, session, name, page="workers", workers=rows,
                         node_id=console.node.node_id)  # fmt: skip


async def tenants_page(console: Console, request: Req, session: Session) -> Response[str]:
    if not session.admin:
        raise Forbidden("the tenants page is the admin's", code="admin_only")

    async def make() -> list[dict[str, Any]]:
        node = console.node
        waiting: dict[str, Counter[str]] = {}
        for row in node.snapshot.rows:
            waiting.setdefault(row.tenant_id, Counter())[row.state] += row.tasks
        refuse = node.backpressure.policy.refuse
        refused: dict[str, dict[str, int]] = defaultdict(dict)  # this node's, since it started
        for (label, outcome), n in node.meters.submitted.items():
            if n and outcome in REFUSALS:
                refused[label][REFUSALS[outcome]] = n
        out = []
        for t in await node.tenants.all():
            quota = _builtins(await node.quotas.get(t.id)) or {}
            w = waiting.get(t.id, Counter())
            recent = await node.stats.read(t.id, SHARE_MINUTES)
            out.append({
                "id": t.id, "name": t.name, "ready": w["ready"], "running": w["running"],
                "scheduled": w["scheduled"], "paused": w["paused"], "dead": w["dead"],
                "held": sum(n for s, n in w.items() if s.startswith("held:")),
                "weight": quota.get("weight", 1.0), "quota": quota,
                "refused": refuse.get(t.id, 0.0), "started": recent.totals.started,
                "refusals": refused.get(t.id, {}),
            })  # fmt: skip
        started = sum(r["started"] for r in out) or 1
        busy = [r for r in out if r["ready"] or r["running"] or r["started"]]
        weights = sum(r["weight"] for r in busy) or 1
        for r in out:
            r["share"] = r["started"] / started
            r["fair"] = r["weight"] / weights if r in busy else 0.0
        return out

    rows = await console.shared.get("tenants", make)
    return await _render(console, session, "tenants.html", page="tenants", rows=rows,
                         snapshot_at=console.node.snapshot.taken_at)  # fmt: skip


# -- schedules, pauses, subscriptions and webhooks --------------------------------------


async def schedules_page(console: Console, request: Req, session: Session) -> Response[str]:
    listed = _builtins(await console.api(request, session, "GET", "/v1/schedules"))
    return await _render(console, session, "schedules.html", page="schedules",
                         schedules=listed["schedules"])  # fmt: skip


async def schedule_action(console: Console, request: Req, session: Session) -> Response[str]:
    name, verb = request.path_params["name"], request.path_params["verb"]
    if verb not in ("pause", "resume"):
        raise InvalidRequest("the action is pause or resume", field="verb")
    await console.api(request, session, "POST", f"/v1/schedules/{{name}}/{verb}",
                      params={"name": name})  # fmt: skip
    return _redirect("/ui/schedules", {"hx-redirect": "/ui/schedules"})


async def pauses_page(console: Console, request: Req, session: Session) -> Response[str]:
    listed = _builtins(await console.api(request, session, "GET", "/v1/pauses"))
    for p in listed["pauses"]:
        selector = msgspec.convert({**p["selector"], "state": ["paused"]}, Selector)
        p["holding"] = await console.node.tasks.count(session.t, selector, COUNT_CAP)
    functions = sorted((await console.node.functions.of(session.t)).keys())
    return await _render(console, session, "pauses.html", page="pauses", cap=COUNT_CAP,
                         pauses=listed["pauses"], functions=functions)  # fmt: skip


async def pause_create(console: Console, request: Req, session: Session) -> Response[str]:
    form = await request.form()
    selector: dict[str, Any] = {}
    functions = [f for f in form.getall("function", []) if f]
    tags = [t.strip() for t in str(form.get("tags") or "").split(",") if t.strip()]
    if functions:
        selector["function"] = functions
    if tags:
        selector["tags"] = tags
    for name in ("priority_min", "priority_max"):
        if form.get(name):
            selector[name] = form.get(name)
    await console.api(request, session, "POST", "/v1/pauses", body={"selector": selector})
    return _redirect("/ui/pauses", {"hx-redirect": "/ui/pauses"})


async def pause_lift(console: Console, request: Req, session: Session) -> Response[str]:
    await console.api(request, session, "DELETE", "/v1/pauses/{pause_id}",
                      params={"pause_id": request.path_params["pause_id"]})  # fmt: skip
    return _redirect("/ui/pauses", {"hx-redirect": "/ui/pauses"})


async def events_page(console: Console, request: Req, session: Session) -> Response[str]:
    subs = _builtins(await console.api(request, session, "GET", "/v1/subscriptions"))
    hooks = _builtins(await console.api(request, session, "GET", "/v1/webhooks"))
    return await _render(
        console,
        session,
        "events.html",
        page="events",
        subscriptions=subs["subscriptions"],
        webhooks=hooks["webhooks"],
    )


async def webhook_enable(console: Console, request: Req, session: Session) -> Response[str]:
    await console.api(request, session, "POST", "/v1/webhooks/{webhook_id}/enable",
                      params={"webhook_id": request.path_params["webhook_id"]})  # fmt: skip
    return _redirect("/ui/events", {"hx-redirect": "/ui/events"})


PUBLIC: set[Page] = {signin_page, signin}  # type: ignore[arg-type]

ROUTES: list[tuple[str, str, Page]] = [
    ("GET", "/", overview),
    ("GET", "/ui/signin", signin_page),
    ("POST", "/ui/signin", signin),
    ("POST", "/ui/signout", signout),
    ("POST", "/ui/tenant", switch_tenant),
    ("GET", "/ui/overview", overview),
    ("GET", "/ui/tasks", tasks_page),
    ("POST", "/ui/tasks/count", tasks_count),
    ("POST", "/ui/tasks/bulk", tasks_bulk),
    ("GET", "/ui/tasks/{task_id:str}", task_page),
    ("GET", "/ui/tasks/{task_id:str}/logs", task_logs),
    ("POST", "/ui/tasks/{task_id:str}/{verb:str}", task_action),
    ("GET", "/ui/dead", dead_page),
    ("POST", "/ui/dead/retry", dead_retry),
    ("GET", "/ui/functions", functions_page),
    ("GET", "/ui/workers", workers_page),
    ("GET", "/ui/tenants", tenants_page),
    ("GET", "/ui/schedules", schedules_page),
    ("POST", "/ui/schedules/{name:str}/{verb:str}", schedule_action),
    ("GET", "/ui/pauses", pauses_page),
    ("POST", "/ui/pauses", pause_create),
    ("POST", "/ui/pauses/{pause_id:str}/lift", pause_lift),
    ("GET", "/ui/events", events_page),
    ("POST", "/ui/webhooks/{webhook_id:str}/enable", webhook_enable),
]
