"""Observability that stays in the clinic: Prometheus metrics at `/metrics` (loopback and the
networks in `[metrics] allow` only), errors recorded in a local file with a console page, and
the logging format. Nothing here talks to anything outside the box."""
