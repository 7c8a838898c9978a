#!/bin/sh
# `make smoke-package`: the wheel and the sdist of DIST, each installed into a fresh venv
# as a user would. Plain: the client and the CLI work and no server package came along;
# with [server]: a server starts, and a task submitted through the CLI runs on a worker.
# Opt-in (not in `make test`): it downloads the dependencies, about a minute.
set -eu
DIST=$(cd "$1" && pwd)
PYTHON=${2:-python3}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

for kind in whl tar.gz; do
    artefact=$(ls "$DIST"/sluice-*."$kind")
    echo "== $artefact"
    "$PYTHON" -m venv "$WORK/$kind"
    bin="$WORK/$kind/bin"
    "$bin/pip" install --quiet "$artefact"
    "$bin/sluice" --version
    "$bin/python" - <<'PY'
import importlib.util, sluice
sluice.Client("http://127.0.0.1:1", "sk_x").close()
extra = [m for m in ("litestar", "uvicorn", "asyncpg", "croniter", "prometheus_client")
         if importlib.util.find_spec(m)]
assert not extra, f"the plain install brought server packages: {extra}"
print("client only: ok")
PY
    "$bin/pip" install --quiet "$artefact[server]"
    cd "$WORK"
    export SLUICE_DATABASE="sqlite:///$WORK/$kind.db" SLUICE_URL=http://127.0.0.1:8499
    SLUICE_API_KEY=$("$bin/sluice" tenant create smoke -o json | "$bin/python" -c \
        'import json, sys; print(json.load(sys.stdin)["api_key"])')
    export SLUICE_API_KEY
    printf 'import sluice\napp = sluice.App("smoke")\n\n@app.task\ndef add(a: int, b: int) -> int:\n    return a + b\n' > smoke_app.py
    "$bin/sluice" server --port 8499 > server.log 2>&1 & echo $! > server.pid
    PYTHONPATH=$WORK "$bin/sluice" worker smoke_app:app > worker.log 2>&1 & echo $! > worker.pid
    for _ in $(seq 50); do
        "$bin/sluice" submit add --args '[1, 2]' --wait 20 -o json > result.json 2>/dev/null && break
        sleep 0.3  # a shell script: the server and the worker are still starting
    done
    "$bin/python" -c 'import json; t = json.load(open("result.json")); assert t["result"] == 3, t; print("server, worker and CLI: ok")'
    kill "$(cat worker.pid)" "$(cat server.pid)"; rm -f ./*.pid
    cd - > /dev/null
done
