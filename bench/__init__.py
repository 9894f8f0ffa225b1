"""orch's benchmark harness: orch against systemd's own tools, side by side in one run.

`make bench` (as root) runs bench/run.py, which boots or reuses the box and runs the
measures inside it as the non-root test user against that user's manager; the report
lands in bench/results/latest.md and latest.json. See bench/README.md.
"""
