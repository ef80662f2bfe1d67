"""The console: agents and admins work in the browser, at /console.

Staff sign in with an email and a password (argon2id), after an invitation by email; the
first start prints the first admin's invitation. Agents work a queue and each ticket's
page: the whole timeline, replies that reach the customer in their own channel, internal
notes, claiming, status, saved replies, and a warning when someone else is on the same
ticket. Admins invite and manage agents, assign tickets (the picker shows each agent's load)
and switch automatic assignment. Pages update live. The rules are the admin API's
(core/access.py, admin_api/desk.py).
"""
