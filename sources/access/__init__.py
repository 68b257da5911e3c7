"""Accounts, roles, jurisdictions, logins and the audit log (no web framework here).

* :mod:`sources.access.users` — the users file (scrypt hashes), re-read while running;
  ``python -m sources.access.users`` edits it.
* :mod:`sources.access.policy` — the one authorisation: ``Access().can(user, action, county=…)``.
* :mod:`sources.access.sessions` — server-side logins and the login throttle.
* :mod:`sources.access.audit` — the hash-chained audit log in the store;
  ``python -m sources.access.audit verify`` checks it.
* :mod:`sources.access.config` — ``load_access_config(...)``: everything checked at start.

The web edge (login page, cookies, route gate) is ``dashboards/auth.py``.
Submodules are not imported here, so ``python -m sources.access.users`` runs cleanly.
"""
