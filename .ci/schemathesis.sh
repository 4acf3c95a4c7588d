#!/usr/bin/env bash
# schemathesis against a live `loopgate serve`, once on SQLite and once on a scratch Postgres
# database: no 5xx, and every status, content type and body as /openapi.json says.
#
# By hand, from the repository root with the dev extras installed:
#   .ci/schemathesis.sh            # both backends
#   .ci/schemathesis.sh sqlite     # or just one
# Postgres: LOOPGATE_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres
# (a database is made for the run and dropped after it).
# SCHEMATHESIS_MAX_EXAMPLES (default 50) bounds the cases per operation and phase. Each run
# draws a new seed, so CI keeps exploring; the log prints it, and SCHEMATHESIS_SEED=N replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -eq 0 ]; then backends=(sqlite postgres); else backends=("$@"); fi
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
admin_url="${LOOPGATE_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
server_pid=""
database=""

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

cleanup() {
  stop_server
  if [ -n "$database" ]; then
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A user's login token (JWT), an operator key (it may answer requests too), and a
# session and a request of that user's, one a line.
credentials() {
  python - "$1" <<'EOF'
import json, sys, urllib.request
base = sys.argv[1]
def post(path, body, **headers):
    headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(base + path, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
account = {"username": "fuzzer", "password": "fuzzer-password-1234"}
post("/api/auth/register", account)
token = post("/api/auth/login", account)["token"]
bearer = {"Authorization": f"Bearer {token}"}
key = post("/api/user/apikeys", {"label": "schemathesis", "kind": "operator"}, **bearer)["raw_key"]
session = {"session_id": "fuzz-session", "client_id": "schemathesis"}
post("/v1/sessions", session, **bearer)
ask = {**session, "message": "Fuzz?", "options": ["Yes", "No"], "timeout_seconds": 3600}
print(token, key, session["session_id"], post("/v1/requests", ask, **bearer)["request_id"], sep="\n")
EOF
}

# schemathesis on the operations the filter picks, with one credential header. One worker:
# with two, hypothesis parses lambdas' source in two threads at once, and CPython 3.11's
# parser can fail doing that ("AST constructor recursion depth mismatch"), an error of the
# tool that would fail the run with nothing wrong in the server.
fuzz() {
  local base="$1" header="$2"
  shift 2
  schemathesis --no-color --config-file .ci/schemathesis.toml run "$base/openapi.json" \
    --header "$header" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" \
    --request-timeout 10 \
    --workers 1 \
    ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} \
    "$@"
}

run_against() {
  local backend="$1" url="$2" port base
  port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  base="http://127.0.0.1:$port"
  # Rate limits would answer the fuzzer's bursts with 429s (documented, so they would pass,
  # but they would hide the routes behind them): 0 turns each rate and waiter cap off.
  (cd "$work" && exec env \
    LOOPGATE_LIMITS__CREATE_RATE=0 \
    LOOPGATE_LIMITS__ANSWER_RATE=0 \
    LOOPGATE_LIMITS__LOGIN_RATE=0 \
    LOOPGATE_LIMITS__MAX_WAITERS=0 \
    LOOPGATE_LIMITS__MAX_WAITERS_PER_WORKSPACE=0 \
    LOOPGATE_DATABASE__URL="$url" \
    LOOPGATE_AUTH__REQUIRE_API_KEY=true \
    LOOPGATE_AUTH__JWT_SECRET="schemathesis-$(python -c 'import secrets; print(secrets.token_hex(16))')" \
    LOOPGATE_REQUESTS__MAX_WAIT_SECONDS=1 \
    LOOPGATE_LOG__LEVEL=warning \
    loopgate serve --port "$port" >"$work/server-$backend.log" 2>&1) &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$base/healthz" >/dev/null || { cat "$work/server-$backend.log"; return 1; }
  local token key status=0
  {
    read -r token
    read -r key
    read -r LOOPGATE_FUZZ_SESSION_ID
    read -r LOOPGATE_FUZZ_REQUEST_ID
  } < <(credentials "$base")
  export LOOPGATE_FUZZ_SESSION_ID LOOPGATE_FUZZ_REQUEST_ID
  echo "--- schemathesis on $backend ($base): the agent and operator routes, with an API key"
  # The SSE routes are left out: a stream stays open by design, so a fuzzer's request
  # would only end at its timeout (tests/web/test_stream.py covers them).
  fuzz "$base" "X-API-Key: $key" --exclude-path-regex '(/events$|^/api/user/)' || status=$?
  echo "--- schemathesis on $backend ($base): the key routes, with a login token"
  fuzz "$base" "Authorization: Bearer $token" --include-path-regex '^/api/user/' || status=$?
  stop_server
  if [ "$status" -ne 0 ]; then
    echo "schemathesis found problems on $backend; server log:" >&2
    tail -n 50 "$work/server-$backend.log" >&2
  fi
  return "$status"
}

for backend in "${backends[@]}"; do
  case "$backend" in
    sqlite) run_against sqlite "sqlite:///$work/loopgate.db" ;;
    postgres)
      database="loopgate_schemathesis_$(python -c 'import secrets; print(secrets.token_hex(6))')"
      psql "$admin_url" -qc "CREATE DATABASE \"$database\""
      run_against postgres "$(python -c 'import sys; from urllib.parse import urlsplit; u = urlsplit(sys.argv[1]); print(u._replace(path="/" + sys.argv[2]).geturl())' "$admin_url" "$database")"
      ;;
    *) echo "unknown backend $backend (sqlite or postgres)" >&2; exit 2 ;;
  esac
done
