"""JSON Schema references through Strom's Schema Registry with confluent-kafka's
JSONSerializer / JSONDeserializer: an `order` schema whose `$ref`s name an `address` schema
registered under another subject. The serializer auto-registers the order schema with its
reference, validates values through the `$ref`, produces through Strom, and the deserializer
reads them back.

Usage: schema_registry_json_refs.py BOOTSTRAP REGISTRY_URL TOPIC
Prints 'schema registry json refs OK' when every check passed; leaves 2 records in TOPIC.
"""
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

bootstrap, url, topic = sys.argv[1:4]
subject = topic + "-value"
ctx = SerializationContext(topic, MessageField.VALUE)
sr = SchemaRegistryClient({"url": url})

ADDRESS = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Address", "type": "object",
    "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
    "required": ["city"],
})
ORDER = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order", "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "ship_to": {"$ref": "address.json"},
        "bill_to": {"$ref": "address.json"},
    },
    "required": ["id", "ship_to"],
})
address_id = sr.register_schema("address", Schema(ADDRESS, "JSON"))
refs = [SchemaReference("address.json", "address", 1)]

# The order schema without its reference: the `$ref` resolves to nothing, 42201.
try:
    sr.register_schema("dangling-value", Schema(ORDER, "JSON"))
    raise AssertionError("a schema with an unresolved $ref was registered")
except SchemaRegistryError as e:
    assert e.http_status_code == 422 and e.error_code == 42201, (e.http_status_code, e.error_code)

ser = JSONSerializer(Schema(ORDER, "JSON", references=refs), sr)
orders = [
    {"id": 1, "ship_to": {"city": "Lyon", "zip": "69001"}},
    {"id": 2, "ship_to": {"city": "Oslo"}, "bill_to": {"city": "Bergen"}},
]
p = Producer({"bootstrap.servers": bootstrap})
for o in orders:
    p.produce(topic, value=ser(o, ctx))
assert p.flush(30) == 0

registered = sr.get_latest_version(subject)
assert registered.schema.schema_type == "JSON"
got_refs = [(r.name, r.subject, r.version) for r in registered.schema.references]
assert got_refs == [("address.json", "address", 1)], got_refs
assert registered.schema_id != address_id
assert sr.get_referenced_by("address", 1) == [registered.schema_id]

# Validation goes through the `$ref`: a referenced schema's required field is enforced.
try:
    ser({"id": 3, "ship_to": {"zip": "1"}}, ctx)
    raise AssertionError("an order without ship_to.city was serialized")
except Exception as e:  # SerializationError
    assert "city" in str(e), e

deser = JSONDeserializer(None, schema_registry_client=sr)
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-" + uuid.uuid4().hex,
              "auto.offset.reset": "earliest"})
c.subscribe([topic])
got = []
while len(got) < len(orders):
    m = c.poll(10.0)
    assert m is not None, f"timed out after {len(got)}"
    assert m.error() is None, m.error()
    got.append(deser(m.value(), ctx))
c.close()
assert got == orders, got
print("schema registry json refs OK")
