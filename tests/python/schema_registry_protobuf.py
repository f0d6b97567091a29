"""Drives Strom's Schema Registry with confluent-kafka's ProtobufSerializer and
ProtobufDeserializer. Message classes are built at run time from FileDescriptorProtos
(google.protobuf's descriptor_pool and message_factory), so no protoc is needed.

Usage:
  schema_registry_protobuf.py BOOTSTRAP REGISTRY_URL write TOPIC
      Registers shop/order.proto (which imports common/money.proto, registered as a schema
      reference, and google/protobuf/timestamp.proto) through the serializer, produces an
      Order, a Refund (message index [1]) and an Order.Line (index [0, 0]), checks the
      registry's view of them, and prints each written message as canonical JSON, one a line.
  schema_registry_protobuf.py BOOTSTRAP REGISTRY_URL read TOPIC N
      Consumes N pay.Payment records with the ProtobufDeserializer (which fetches the writer
      schema with format=serialized) and prints each as canonical JSON, one a line.
"""
import base64
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, timestamp_pb2  # noqa: F401 (loads Timestamp into the pool)
from google.protobuf.message_factory import GetMessageClass

F = descriptor_pb2.FieldDescriptorProto


def field(name, number, type_, type_name=None, label=F.LABEL_OPTIONAL):
    f = F(name=name, number=number, type=type_, label=label)
    if type_name:
        f.type_name = type_name
    return f


# common/money.proto
common = descriptor_pb2.FileDescriptorProto(name="common/money.proto", package="common", syntax="proto3")
money = common.message_type.add(name="Money")
money.field.extend([field("currency", 1, F.TYPE_STRING), field("units", 2, F.TYPE_INT64)])

# shop/order.proto
order_file = descriptor_pb2.FileDescriptorProto(
    name="shop/order.proto", package="shop", syntax="proto3",
    dependency=["common/money.proto", "google/protobuf/timestamp.proto"])
order = order_file.message_type.add(name="Order")
order.field.extend([
    field("id", 1, F.TYPE_INT64),
    field("customer", 2, F.TYPE_STRING),
    field("total", 3, F.TYPE_MESSAGE, ".common.Money"),
    field("placed_at", 4, F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
    field("tags", 5, F.TYPE_STRING, label=F.LABEL_REPEATED),
    field("status", 6, F.TYPE_ENUM, ".shop.Order.Status"),
    field("lines", 7, F.TYPE_MESSAGE, ".shop.Order.Line", F.LABEL_REPEATED),
])
status = order.enum_type.add(name="Status")
status.value.add(name="NEW", number=0)
status.value.add(name="PAID", number=1)
line = order.nested_type.add(name="Line")
line.field.extend([field("sku", 1, F.TYPE_STRING), field("qty", 2, F.TYPE_INT32)])
refund = order_file.message_type.add(name="Refund")
refund.field.extend([field("order_id", 1, F.TYPE_INT64), field("reason", 2, F.TYPE_STRING)])

# pay/payment.proto: what `strom produce --value-format protobuf` writes in the read test.
payment_file = descriptor_pb2.FileDescriptorProto(
    name="pay/payment.proto", package="pay", syntax="proto3",
    dependency=["google/protobuf/timestamp.proto"])
payment = payment_file.message_type.add(name="Payment")
payment.field.extend([
    field("id", 1, F.TYPE_INT64),
    field("amount", 2, F.TYPE_DOUBLE),
    field("memo", 3, F.TYPE_STRING),
    field("at", 4, F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
    field("kind", 5, F.TYPE_ENUM, ".pay.Payment.Kind"),
    field("tags", 6, F.TYPE_STRING, label=F.LABEL_REPEATED),
])
kind = payment.enum_type.add(name="Kind")
kind.value.add(name="CARD", number=0)
kind.value.add(name="CASH", number=1)

pool = descriptor_pool.Default()
for f in (common, order_file, payment_file):
    pool.Add(f)
Order = GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
Line = GetMessageClass(pool.FindMessageTypeByName("shop.Order.Line"))
Refund = GetMessageClass(pool.FindMessageTypeByName("shop.Refund"))
Payment = GetMessageClass(pool.FindMessageTypeByName("pay.Payment"))


def canonical(msg):
    return json.dumps(json_format.MessageToDict(msg), sort_keys=True)


def write(bootstrap, url, topic):
    sr = SchemaRegistryClient({"url": url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": bootstrap})
    o = Order(id=7, customer="ada", tags=["gift", "rush"], status=Order.Status.Value("PAID"))
    o.total.currency = "EUR"
    o.total.units = 1250
    o.placed_at.seconds = 1_764_756_000
    o.lines.add(sku="A-1", qty=2)
    messages = [
        (Order, o),
        (Refund, Refund(order_id=7, reason="damaged")),
        (Line, Line(sku="B-2", qty=5)),
    ]
    for cls, msg in messages:
        ser = ProtobufSerializer(cls, sr, {"use.deprecated.format": False})
        p.produce(topic, value=ser(msg, ctx))
    assert p.flush(30) == 0

    subject = topic + "-value"
    latest = sr.get_latest_version(subject)
    assert latest.schema.schema_type == "PROTOBUF", latest.schema.schema_type
    assert latest.version == 1, latest.version  # one schema file for all three types
    refs = [(r.name, r.subject, r.version) for r in latest.schema.references]
    assert refs == [("common/money.proto", "common/money.proto", 1)], refs
    assert sr.get_latest_version("common/money.proto").schema.schema_type == "PROTOBUF"

    # An incompatible change (a field's scalar kind) is refused; a compatible one accepted.
    changed = descriptor_pb2.FileDescriptorProto()
    changed.CopyFrom(order_file)
    changed.message_type[0].field[1].type = F.TYPE_INT64  # customer: string -> int64
    bad = Schema(base64.b64encode(changed.SerializeToString()).decode(), "PROTOBUF",
                 latest.schema.references)
    assert sr.test_compatibility(subject, bad) is False
    try:
        sr.register_schema(subject, bad)
        raise AssertionError("incompatible protobuf schema registered")
    except SchemaRegistryError as e:
        assert e.http_status_code == 409, e.http_status_code
    added = descriptor_pb2.FileDescriptorProto()
    added.CopyFrom(order_file)
    added.message_type[0].field.add(name="note", number=8, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    good = Schema(base64.b64encode(added.SerializeToString()).decode(), "PROTOBUF",
                  latest.schema.references)
    assert sr.test_compatibility(subject, good) is True

    # Read back with the Python deserializer (Order only: the deserializer's class decides).
    deser = ProtobufDeserializer(Order, {"use.deprecated.format": False}, schema_registry_client=sr)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    m = c.poll(15.0)
    assert m is not None and m.error() is None, m and m.error()
    assert deser(m.value(), ctx) == o
    c.close()
    for _, msg in messages:
        print(canonical(msg))


def read(bootstrap, url, topic, n):
    sr = SchemaRegistryClient({"url": url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    deser = ProtobufDeserializer(Payment, {"use.deprecated.format": False}, schema_registry_client=sr)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = 0
    while got < n:
        m = c.poll(15.0)
        assert m is not None, f"timed out after {got}"
        assert m.error() is None, m.error()
        print(canonical(deser(m.value(), ctx)))
        got += 1
    c.close()


if __name__ == "__main__":
    bootstrap, url, mode, topic = sys.argv[1:5]
    if mode == "write":
        write(bootstrap, url, topic)
    else:
        read(bootstrap, url, topic, int(sys.argv[5]))
