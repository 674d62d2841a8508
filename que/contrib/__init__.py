"""Integrations with the tools a team already runs, each an optional extra: Prometheus
(`que.contrib.prometheus`, extra `metrics`)."""
