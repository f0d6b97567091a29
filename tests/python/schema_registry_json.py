"""Drives Strom's Schema Registry with confluent-kafka's JSONSerializer / JSONDeserializer,
producing through Strom and consuming back, and checks JSON Schema compatibility verdicts.

Usage: schema_registry_json.py BOOTSTRAP REGISTRY_URL TOPIC
Prints 'schema registry json OK' when every check passed; leaves 3 records in TOPIC.
"""
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

bootstrap, url, topic = sys.argv[1:4]
subject = topic + "-value"
ctx = SerializationContext(topic, MessageField.VALUE)
sr = SchemaRegistryClient({"url": url})

V1 = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading", "type": "object", "additionalProperties": False,
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}},
    "required": ["sensor", "value"],
})
# Closed content model: an added optional property is backward compatible.
V2 = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading", "type": "object", "additionalProperties": False,
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"},
                   "unit": {"type": "string"}},
    "required": ["sensor", "value"],
})
# A property's type narrowed: incompatible.
BAD = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading", "type": "object", "additionalProperties": False,
    "properties": {"sensor": {"type": "string"}, "value": {"type": "integer"}},
    "required": ["sensor", "value"],
})

ser = JSONSerializer(V1, sr)
p = Producer({"bootstrap.servers": bootstrap})
readings = [{"sensor": f"s{i}", "value": i * 1.5} for i in range(3)]
for r in readings:
    p.produce(topic, value=ser(r, ctx))
assert p.flush(30) == 0

v1 = sr.get_version(subject, 1)
assert v1.schema.schema_type == "JSON", v1.schema.schema_type

# The serializer validates with the schema, so a bad record never leaves the client.
try:
    ser({"sensor": 1, "value": "x"}, ctx)
    raise AssertionError("invalid record serialized")
except Exception as e:  # SerializationError
    assert "SerializationError" in type(e).__name__ or "valid" in str(e), e

assert sr.test_compatibility(subject, Schema(V2, "JSON")) is True
assert sr.test_compatibility(subject, Schema(BAD, "JSON")) is False
try:
    sr.register_schema(subject, Schema(BAD, "JSON"))
    raise AssertionError("incompatible JSON schema registered")
except SchemaRegistryError as e:
    assert e.http_status_code == 409, e.http_status_code
id2 = sr.register_schema(subject, Schema(V2, "JSON"))
assert id2 != v1.schema_id

deser = JSONDeserializer(None, schema_registry_client=sr)
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-" + uuid.uuid4().hex,
              "auto.offset.reset": "earliest"})
c.subscribe([topic])
got = []
while len(got) < len(readings):
    m = c.poll(10.0)
    assert m is not None, f"timed out after {len(got)}"
    assert m.error() is None, m.error()
    got.append(deser(m.value(), ctx))
c.close()
assert got == readings, got
print("schema registry json OK")
