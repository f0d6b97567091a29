"""As the super user admin (SASL PLAIN, password admin-secret): creates topics `created`
(comma-separated, or - for none) and an ALLOW ACL for principal, operation on the literal topic.
Args: bootstrap principal operation topic created. Prints "granted"."""
import sys

from kafka import KafkaAdminClient
from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         NewTopic, ResourcePattern, ResourceType)

bootstrap, principal, operation, topic, created = sys.argv[1:6]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="PLAIN", sasl_plain_username="admin",
                         sasl_plain_password="admin-secret")
if created != "-":
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                         for t in created.split(",")])
result = admin.create_acls([ACL(
    principal=principal, host="*", operation=ACLOperation[operation],
    permission_type=ACLPermissionType.ALLOW,
    resource_pattern=ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL))])
assert len(result["succeeded"]) == 1, result
print("granted")
