"""Drives Strom's Schema Registry with confluent-kafka's own SchemaRegistryClient,
AvroSerializer and AvroDeserializer, producing through Strom and consuming back.

Usage: schema_registry_avro.py BOOTSTRAP REGISTRY_URL
Prints 'schema registry avro OK' when every check passed.
"""
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

bootstrap, registry_url = sys.argv[1], sys.argv[2]
topic = "orders-" + uuid.uuid4().hex[:8]
subject = topic + "-value"

V1 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    ],
})
# Backward compatible: a new field with a default.
V2 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
})
# Not backward compatible: a new field without a default.
BAD = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "qty", "type": "int"},
    ],
})

sr = SchemaRegistryClient({"url": registry_url})
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result()

# 1. Auto-registration by the serializer, produce through Strom.
ser = AvroSerializer(sr, V1)
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
orders = [{"id": i, "item": f"item-{i}", "status": "NEW" if i % 2 else "PAID"} for i in range(20)]
for o in orders:
    producer.produce(topic, value=ser(o, SerializationContext(topic, MessageField.VALUE)))
assert producer.flush(30) == 0

v1 = sr.get_latest_version(subject)
assert v1.version == 1, v1
assert json.loads(v1.schema.schema_str) == json.loads(V1)
id1 = v1.schema_id

# 2. Evolve: v2 registered by a second serializer; records written with both.
ser2 = AvroSerializer(sr, V2)
extra = [{"id": 100 + i, "item": "x", "status": "NEW", "note": f"n{i}"} for i in range(5)]
for o in extra:
    producer.produce(topic, value=ser2(o, SerializationContext(topic, MessageField.VALUE)))
assert producer.flush(30) == 0
v2 = sr.get_version(subject, 2)  # (get_latest_version is cached by the client)
assert v2.version == 2 and v2.schema_id != id1, (v2, id1)
assert sr.get_versions(subject) == [1, 2]

# 3. Consume back with the deserializer (it fetches schemas by id from the registry).
deser = AvroDeserializer(sr)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-" + topic,
                     "auto.offset.reset": "earliest"})
consumer.subscribe([topic])
got, ids = [], set()
while len(got) < len(orders) + len(extra):
    m = consumer.poll(10.0)
    assert m is not None, f"timed out after {len(got)} records"
    assert m.error() is None, m.error()
    raw = m.value()
    assert raw[0] == 0, "magic byte"
    ids.add(int.from_bytes(raw[1:5], "big"))
    got.append(deser(raw, SerializationContext(topic, MessageField.VALUE)))
consumer.close()
assert got[:20] == orders, got[:3]
assert got[20:] == extra, got[20:]
assert ids == {id1, v2.schema_id}, ids

# 4. An incompatible schema is refused with 409; nothing is registered.
try:
    sr.register_schema(subject, Schema(BAD, "AVRO"))
    raise AssertionError("incompatible schema was registered")
except SchemaRegistryError as e:
    assert e.http_status_code == 409 and e.error_code == 409, (e.http_status_code, e.error_code)
assert sr.get_versions(subject) == [1, 2]
assert sr.test_compatibility(subject, Schema(BAD, "AVRO")) is False
assert sr.test_compatibility(subject, Schema(V2, "AVRO")) is True

# 5. With NONE it is accepted as version 3.
sr.set_compatibility(subject, "NONE")
assert sr.get_compatibility(subject) == "NONE"
id3 = sr.register_schema(subject, Schema(BAD, "AVRO"))
assert sr.get_versions(subject) == [1, 2, 3]
# Registering the same schema again returns the same id, no new version.
assert sr.register_schema(subject, Schema(BAD, "AVRO")) == id3
assert sr.lookup_schema(subject, Schema(V1, "AVRO")).version == 1

# 6. The same schema under another subject gets the same (global) id.
other = topic + "-copy"
assert sr.register_schema(other, Schema(V1, "AVRO")) == id1

# 7. use.latest.version without auto-registration.
fresh = SchemaRegistryClient({"url": registry_url})  # no cached latest version
ser_latest = AvroSerializer(fresh, None, conf={"auto.register.schemas": False,
                                            "use.latest.version": True})
payload = ser_latest({"id": 1, "qty": 7}, SerializationContext(topic, MessageField.VALUE))
assert int.from_bytes(payload[1:5], "big") == id3

# 8. Unknown id: the deserializer fails with the registry's 40403.
try:
    deser(b"\x00" + (999999).to_bytes(4, "big") + b"\x02", SerializationContext(topic, MessageField.VALUE))
    raise AssertionError("unknown id was decoded")
except SchemaRegistryError as e:
    assert e.http_status_code == 404 and e.error_code == 40403, (e.http_status_code, e.error_code)

# 9. Soft delete, then permanent delete; subjects list follows.
assert sr.delete_subject(other) == [1]
assert other not in sr.get_subjects()
assert sr.delete_subject(other, permanent=True) == [1]
try:
    sr.get_versions(other)
    raise AssertionError("deleted subject still served")
except SchemaRegistryError as e:
    assert e.error_code == 40401, e.error_code
# The schema itself still resolves for old data.
assert json.loads(sr.get_schema(id1).schema_str) == json.loads(V1)

print("schema registry avro OK")
