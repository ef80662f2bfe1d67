#!/usr/bin/env bash
# Schemathesis with every check (`--checks all`) against a real `careline serve` on a
# throwaway SQLite database, seeded through the API, with its own admin key and the rate
# limits in place: the fuzzer keeps under the key's limit (--rate-limit), and only the limit on
# invalid keys per address is raised, since the auth checks send invalid keys on purpose.
# Config: schemathesis.toml (the statuses a schema-valid request may get). No stateful phase:
# it follows GET /keys to DELETE /keys/{id} and revokes the run's own key.
#
#   scripts/fuzz-api.sh [MAX_EXAMPLES]      # default 50 per operation
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-50}
work=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CARELINE_DATABASE_URL="sqlite+aiosqlite:///$work/careline.db" CARELINE_DATA_DIR="$work/var"
export CARELINE_API_FAILED_KEYS_PER_MINUTE=1000000 CARELINE_LOG_LEVEL=warning

.venv/bin/careline migrate >/dev/null
# Seeded before the server holds the file: the fuzzer's own admin key (with an id the generator
# will not guess, so a generated DELETE /keys/{id} cannot revoke it), three customers with a
# ticket each, and a dead notice to retry.
key=$(.venv/bin/python - <<'SEED'
import asyncio, os
from sqlalchemy import insert, select
from admin_api.keys import hash_key, new_secret
from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Channel, utcnow

async def seed() -> str:
    db = Database(os.environ["CARELINE_DATABASE_URL"])
    key = new_secret()
    async with db.uow() as uow:
        now = utcnow()
        await uow.session.execute(insert(t.api_keys).values(
            id=7_654_321, name="fuzz", role="admin", prefix=key[:12], key_hash=hash_key(key),
            created_at=now))
        for n in range(3):
            customer, identity = await services.find_or_register_customer(
                uow, channel=Channel.TELEGRAM, external_id=f"u{n}", chat_id=f"c{n}",
                display_name=f"Customer {n}")
            await services.open_ticket(uow, customer_id=customer.id, identity_id=identity.id,
                                       description=f"Refund request {n}", category="billing")
        await uow.commit()
        event_id = await uow.session.scalar(select(t.outbox.c.id).limit(1))
        await uow.session.execute(insert(t.outbox_deliveries).values(
            event_id=event_id, handler="slack.open_thread", status="dead", attempts=12,
            last_error="boom", updated_at=now))
        await uow.session.commit()
    await db.dispose()
    return key

print(asyncio.run(seed()))
SEED
)
.venv/bin/careline serve --port "$port" >"$work/server.log" 2>&1 &
server=$!
# The script's exit status is schemathesis's: the stopped server's 143 must not trip `set -e`.
trap 'rc=$?; kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$work"; exit "$rc"' EXIT
base="http://127.0.0.1:$port/api/v1"
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

auth=(-H "Authorization: Bearer $key" -H "Content-Type: application/json")
curl -fs "${auth[@]}" -d '{"name":"Grace Hopper","email":"grace@example.com"}' "$base/agents" >/dev/null
curl -fs "${auth[@]}" -d '{"name":"Alan Turing","email":"alan@example.com","capacity":1}' "$base/agents" >/dev/null

started=$(date +%s)
status=0
.venv/bin/st run "$base/openapi.json" --checks all -H "Authorization: Bearer $key" \
  --max-examples "$examples" --seed 15 --workers 1 --rate-limit 9/s \
  --phases examples,coverage,fuzzing || status=$?
echo "fuzz-api: $(( $(date +%s) - started )) s, schemathesis exit code $status"
exit "$status"
