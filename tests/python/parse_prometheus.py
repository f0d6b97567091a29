"""Parses Prometheus' text exposition format on stdin with the Prometheus project's own Python
parser (prometheus_client) and prints every sample as JSON: [[name, {labels}, value], ...].
A malformed exposition raises, and the script exits non-zero."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps(samples))
