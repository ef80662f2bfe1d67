"""Careline admin API: agents, tickets, assignment, customers, dead letters, reports, the
knowledge base and the intent examples.

Mounted by `careline serve` at `/api/v1`; interactive docs at `/api/v1/docs`.

**Authentication.** Every route needs `Authorization: Bearer KEY`. Keys are random
(`clk_` + 256 bits), shown once when created (`careline admin create-key` or `POST /keys`)
and stored only as a SHA-256 hash. The first start creates one admin key and prints it.
Without a valid key: 401. With a key whose role may not do it: 403. Past a rate limit: 429
with `Retry-After`. By default a key may make 600 requests a minute, and a client address
may present 10 invalid keys a minute; past that its invalid keys get 429, while a valid key
is always served. All replicas count into the same limits (PostgreSQL).

**Roles.**

| route | admin | agent |
|---|---|---|
| `GET /me` | yes | yes |
| `GET/POST /keys`, `DELETE /keys/{id}` | yes | 403 |
| `GET /agents`, `GET /agents/{id}` | yes | yes |
| `POST /agents`, `PATCH /agents/{id}`, `POST /agents/{id}/deactivate`, `/activate` | yes | 403 |
| `GET /tickets`, `GET /tickets/{id}` | yes | yes (all tickets) |
| `POST /tickets/{id}/assign`, `/unassign`, `POST /tickets/auto-assign` | yes | 403 |
| `POST /tickets/{id}/claim` | 403 (no agent) | unassigned or own tickets |
| `POST /tickets/{id}/status`, `/priority` | yes | own tickets only |
| `POST /tickets/{id}/notes`, `/replies` | yes (replies name `agent_id`) | own or unassigned |
| `GET/PUT /settings/auto-assign` | yes | 403 |
| `GET /customers/{id}`, `GET /customers/{id}/tickets` | yes | yes |
| `GET /customers/{id}/export`, `POST /customers/{id}/erase` | yes | 403 |
| `GET /dead-letters`, `POST /dead-letters/{id}/retry` | yes | 403 |
| `GET /reports/agents`, `/categories`, `/daily` | yes | 403 |
| `GET /articles`, `/articles/{id}`, `/articles/{id}/versions`, `/export`, `/gaps` | yes | yes |
| `POST /articles`, `PATCH /articles/{id}` | yes | drafts only |
| `POST /articles/{id}/publish`, `/unpublish`, `DELETE /articles/{id}` | yes | 403 |
| `POST /articles/import` | yes | 403 |
| `GET /intents`, `/intents/training`, `/intents/{name}/examples` | yes | yes |
| `POST /intents/{name}/examples`, `DELETE /intents/{name}/examples/{id}` | yes | 403 |

A reply on an unassigned ticket claims it for the replying agent. An agent acting on a
ticket held by another agent gets 403.

**Errors** are `application/problem+json` (RFC 9457) with `type`, `title`, `status`,
`detail`, `instance` and a short `code`; 422s list field problems in `errors`. A 409
refuses a well-formed request in the current state (a closed ticket, an email already
taken). A 422 refuses the request itself, also for rules a schema cannot state: a `cursor`
the API did not issue (`invalid_cursor`), `since` after `until` (`invalid_period`),
reassigning an agent's tickets to that agent (`reassign_to_self`), an admin reply without
`agent_id` (`agent_id_required`), an imported file that is not an article
(`invalid_file`). Request bodies are limited (256 KiB by default; 413).

**Lists** page by keyset: pass the `next_cursor` of one page as `cursor` for the next.
"""
