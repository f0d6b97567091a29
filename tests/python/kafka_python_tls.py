"""kafka-python (Python's ssl module, not OpenSSL through librdkafka) over mutual TLS:
creates a topic, produces and consumes. Args: bootstrap ca.pem client.crt client.key."""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

bootstrap, ca, cert, key = sys.argv[1:5]
tls = dict(
    bootstrap_servers=bootstrap,
    security_protocol="SSL",
    ssl_cafile=ca,
    ssl_certfile=cert,
    ssl_keyfile=key,
    ssl_check_hostname=True,
)
admin = KafkaAdminClient(**tls)
admin.create_topics([NewTopic("py-tls", num_partitions=1, replication_factor=1)])
producer = KafkaProducer(acks="all", **tls)
for i in range(10):
    producer.send("py-tls", f"py-{i}".encode()).get(timeout=10)
producer.flush()
consumer = KafkaConsumer(
    "py-tls", auto_offset_reset="earliest", consumer_timeout_ms=10000, **tls
)
values = [m.value.decode() for m in consumer]
assert values == [f"py-{i}" for i in range(10)], values
print("kafka-python TLS OK")
