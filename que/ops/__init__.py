"""Operating a queue: health checks (`que health`, /health) and the HTTP endpoint of
`que work --metrics-port`."""
