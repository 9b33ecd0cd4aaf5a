#!/usr/bin/env bash
# `make run`: the demo upstream on :8000 and Bastion in front of it on :8080 (in-memory defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export BASTION_DEMO_SECRET="${BASTION_DEMO_SECRET:-dev-only-demo-secret-change-me-0123456789}"
export DEMO_ALICE_PASSWORD="${DEMO_ALICE_PASSWORD:-alice-demo-password}"
export DEMO_ADMIN_PASSWORD="${DEMO_ADMIN_PASSWORD:-admin-demo-password}"
export BASTION_ADMIN_TOKEN="${BASTION_ADMIN_TOKEN:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")}"
export BASTION_REVOCATION_URL="http://127.0.0.1:9901/revocations"

"$PY" -m upstream --host 127.0.0.1 --port 8000 --data-dir .data &
UP=$!
trap 'kill $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
"$PY" - <<'PYEOF'
import socket, time
deadline = time.time() + 15
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", 8000), 0.5).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("the demo upstream did not start on 127.0.0.1:8000")
PYEOF

cat <<BANNER

  Bastion     http://127.0.0.1:8080   (in front of the demo upstream on 127.0.0.1:8000)
  Admin       http://127.0.0.1:9901/readyz
  Demo users  alice / ${DEMO_ALICE_PASSWORD}   admin / ${DEMO_ADMIN_PASSWORD}

  Log in and call /tasks through the sidecar:

    TOKEN=\$(curl -s -X POST http://127.0.0.1:8080/auth/login -H 'Content-Type: application/json' \\
      -d '{"username": "alice", "password": "${DEMO_ALICE_PASSWORD}"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    curl -s -X POST http://127.0.0.1:8080/tasks -H "Authorization: Bearer \$TOKEN" \\
      -H 'Content-Type: application/json' -d '{"title": "try Bastion"}'
    curl -s http://127.0.0.1:8080/tasks -H "Authorization: Bearer \$TOKEN"

  Logs are JSON on stdout. Ctrl-C stops both.

BANNER
"$PY" -m proxy run -c config.yaml
