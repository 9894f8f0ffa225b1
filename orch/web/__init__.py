"""orch serve: the HTTP API, its access rules, and the dashboard page."""
