"""kafka-python against a broker with the StandardAuthorizer on a SASL_PLAINTEXT listener
(users admin, alice, bob; admin is a super user). Creates, describes and deletes ACLs as
kafka-acls.sh would, and checks what alice and bob may do: produce, consume in a group,
which topics metadata shows, and that ACL changes need ALTER on the cluster.
Args: bootstrap. Prints "kafka-python ACLs OK" at the end."""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, NewTopic, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from kafka.errors import (ClusterAuthorizationFailedError, GroupAuthorizationFailedError,
                          TopicAuthorizationFailedError)

bootstrap = sys.argv[1]


def sasl(user):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="PLAIN", sasl_plain_username=user,
                sasl_plain_password=f"{user}-secret")


def acl(principal, op, perm, rtype, name, pattern=ACLResourcePatternType.LITERAL):
    return ACL(principal=principal, host="*", operation=op, permission_type=perm,
               resource_pattern=ResourcePattern(rtype, name, pattern))


admin = KafkaAdminClient(**sasl("admin"))
admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                     for t in ("orders", "payments")])

wanted = [
    acl("User:alice", ACLOperation.WRITE, ACLPermissionType.ALLOW, ResourceType.TOPIC, "orders"),
    acl("User:alice", ACLOperation.READ, ACLPermissionType.ALLOW, ResourceType.TOPIC, "ord",
        ACLResourcePatternType.PREFIXED),
    acl("User:alice", ACLOperation.READ, ACLPermissionType.ALLOW, ResourceType.GROUP, "app-",
        ACLResourcePatternType.PREFIXED),
    # bob may read every topic but payments.
    acl("User:bob", ACLOperation.READ, ACLPermissionType.ALLOW, ResourceType.TOPIC, "*"),
    acl("User:bob", ACLOperation.ALL, ACLPermissionType.DENY, ResourceType.TOPIC, "payments"),
]
created = admin.create_acls(wanted)
assert len(created["succeeded"]) == 5 and not created["failed"], created

everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                       permission_type=ACLPermissionType.ANY,
                       resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                              ACLResourcePatternType.ANY))
listed, error = admin.describe_acls(everything)
assert error.errno == 0, error
key = lambda a: (a.principal, a.operation, a.permission_type, a.resource_pattern.resource_type,
                 a.resource_pattern.resource_name, a.resource_pattern.pattern_type)
assert sorted(map(key, listed)) == sorted(map(key, wanted)), listed

# MATCH: the ACLs that apply to topic "orders" (literal, the prefixed "ord", bob's "*").
matching, _ = admin.describe_acls(ACLFilter(
    principal=None, host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
    resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders",
                                           ACLResourcePatternType.MATCH)))
assert sorted(a.resource_pattern.resource_name for a in matching) == ["*", "ord", "orders"], matching

# alice: writes and reads orders in group app-1; payments is refused; metadata hides it.
producer = KafkaProducer(acks="all", retries=0, max_block_ms=10000, **sasl("alice"))
for i in range(5):
    producer.send("orders", f"o-{i}".encode()).get(timeout=10)
try:
    producer.send("payments", b"x").get(timeout=10)
    raise SystemExit("alice wrote to payments")
except TopicAuthorizationFailedError:
    print("alice -> payments refused as expected")
consumer = KafkaConsumer("orders", group_id="app-1", auto_offset_reset="earliest",
                         consumer_timeout_ms=10000, **sasl("alice"))
assert [m.value.decode() for m in consumer] == [f"o-{i}" for i in range(5)]
consumer.commit()
consumer.close()
alice_admin = KafkaAdminClient(**sasl("alice"))
assert sorted(alice_admin.list_topics()) == ["orders"], alice_admin.list_topics()
refused = alice_admin.create_acls([wanted[0]])
assert not refused["succeeded"] and refused["failed"] == [ClusterAuthorizationFailedError], refused
print("alice create_acls refused as expected")
consumer = KafkaConsumer("orders", group_id="other", auto_offset_reset="earliest",
                         consumer_timeout_ms=5000, **sasl("alice"))
try:
    list(consumer)
    raise SystemExit("alice joined group 'other'")
except GroupAuthorizationFailedError:
    print("alice group 'other' refused as expected")
consumer.close()

# bob: reads orders, not payments (DENY wins over the wildcard ALLOW). The wildcard covers
# the internal __consumer_offsets too (alice's group created it), as in Kafka.
bob_admin = KafkaAdminClient(**sasl("bob"))
assert sorted(bob_admin.list_topics()) == ["__consumer_offsets", "orders"], bob_admin.list_topics()

# Deleting alice's WRITE takes it away.
results = admin.delete_acls([ACLFilter(
    principal="User:alice", host=None, operation=ACLOperation.WRITE,
    permission_type=ACLPermissionType.ANY,
    resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.ANY))])
(_, deleted, error), = results
assert [key(a) for a in deleted] == [key(wanted[0])], deleted
time.sleep(0.5)
producer2 = KafkaProducer(acks="all", retries=0, max_block_ms=10000, **sasl("alice"))
try:
    producer2.send("orders", b"late").get(timeout=10)
    raise SystemExit("alice wrote after her ACL was deleted")
except TopicAuthorizationFailedError:
    print("alice -> orders refused after the delete")
remaining, _ = admin.describe_acls(everything)
assert len(remaining) == 4, remaining
print("kafka-python ACLs OK")
