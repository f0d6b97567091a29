"""Both directions between `strom produce/consume --value-format avro` and confluent-kafka's
Python Avro serdes.

Usage:
  schema_registry_cli_interop.py BOOTSTRAP REGISTRY_URL read TOPIC COUNT
      consumes COUNT records with AvroDeserializer, prints each as one JSON line
  schema_registry_cli_interop.py BOOTSTRAP REGISTRY_URL write TOPIC SCHEMA_FILE
      produces each JSON line of stdin with AvroSerializer (auto-registering the schema)
"""
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

bootstrap, url, mode, topic = sys.argv[1:5]
sr = SchemaRegistryClient({"url": url})
ctx = SerializationContext(topic, MessageField.VALUE)

if mode == "read":
    count = int(sys.argv[5])
    deser = AvroDeserializer(sr)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    n = 0
    while n < count:
        m = c.poll(10.0)
        assert m is not None, f"timed out after {n} records"
        assert m.error() is None, m.error()
        print(json.dumps(deser(m.value(), ctx), sort_keys=True, separators=(",", ":")))
        n += 1
    c.close()
else:
    with open(sys.argv[5]) as f:
        ser = AvroSerializer(sr, f.read())
    p = Producer({"bootstrap.servers": bootstrap})
    for line in sys.stdin:
        if line.strip():
            p.produce(topic, value=ser(json.loads(line), ctx))
    assert p.flush(30) == 0
    print("written")
