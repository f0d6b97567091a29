"""kafka-python over SASL_PLAINTEXT: authenticates with the given mechanism, creates a topic,
produces and consumes; a wrong password is refused. Args: bootstrap mechanism user password."""
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

bootstrap, mechanism, user, password = sys.argv[1:5]
sasl = dict(
    bootstrap_servers=bootstrap,
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism=mechanism,
    sasl_plain_username=user,
    sasl_plain_password=password,
)
admin = KafkaAdminClient(**sasl)
admin.create_topics([NewTopic("py-sasl", num_partitions=1, replication_factor=1)])
producer = KafkaProducer(acks="all", **sasl)
for i in range(10):
    producer.send("py-sasl", f"py-{i}".encode()).get(timeout=10)
producer.flush()
consumer = KafkaConsumer(
    "py-sasl", auto_offset_reset="earliest", consumer_timeout_ms=10000, **sasl
)
values = [m.value.decode() for m in consumer]
assert values == [f"py-{i}" for i in range(10)], values

try:
    KafkaAdminClient(**{**sasl, "sasl_plain_password": password + "-wrong"}).list_topics()
    raise SystemExit("a wrong password was accepted")
except KafkaError as e:
    print("refused as expected:", type(e).__name__)
print("kafka-python SASL OK")
