use proptest::prelude::*;

use super::*;

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// One record of every variant, with no field at its default.
fn every_variant() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::Cluster {
            cluster_id: "q1w2e3r4t5y6u7i8o9p0aA".into(),
        },
        MetadataRecord::RegisterBroker {
            broker_id: 7,
            host: "broker-7.example".into(),
            port: 19092,
            rack: Some("rack-b".into()),
            listeners: vec![
                BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "10.0.0.7".into(),
                    port: 9092,
                },
                BrokerEndpoint {
                    name: "EXTERNAL".into(),
                    host: "ext-7.example".into(),
                    port: 65535,
                },
            ],
        },
        MetadataRecord::FenceBroker { broker_id: -3 },
        MetadataRecord::UnregisterBroker { broker_id: 12 },
        MetadataRecord::ScramCredential {
            user: "alice".into(),
            mechanism: 2,
            salt: vec![1, 2, 3],
            stored_key: vec![0xff; 64],
            server_key: vec![],
            iterations: 8192,
        },
        MetadataRecord::RemoveScramCredential {
            user: "bob".into(),
            mechanism: 1,
        },
        MetadataRecord::Acl {
            id: uuid(77),
            binding: crate::acl::AclBinding {
                resource_type: crate::acl::ResourceType::Topic,
                resource_name: "orders-".into(),
                pattern_type: crate::acl::PatternType::Prefixed,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: crate::acl::AclOperation::Write,
                permission: crate::acl::AclPermission::Deny,
            },
        },
        MetadataRecord::RemoveAcl { id: uuid(78) },
        MetadataRecord::ClientQuota {
            entity: crate::quota::QuotaEntity::new(vec![
                ("user".into(), Some("alice".into())),
                ("client-id".into(), None),
            ]),
            key: "producer_byte_rate".into(),
            value_bits: Some(1024.5f64.to_bits()),
        },
        MetadataRecord::ClientQuota {
            entity: crate::quota::QuotaEntity::new(vec![("user".into(), None)]),
            key: "consumer_byte_rate".into(),
            value_bits: None,
        },
        MetadataRecord::UnfenceBroker {
            broker_id: i32::MAX,
        },
        MetadataRecord::Topic {
            name: "orders-ünïcode".into(),
            topic_id: uuid(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        },
        MetadataRecord::Partition {
            topic_id: uuid(u128::MAX - 5),
            partition: 12,
            replicas: vec![1, 2, 3, 4],
            isr: vec![2, 3],
            leader: 2,
            leader_epoch: 41,
            partition_epoch: 99,
            eligible_leader_replicas: vec![1],
            last_known_elr: vec![4],
            adding_replicas: vec![4],
            removing_replicas: vec![1, i32::MIN],
        },
        MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("86400000".into()),
        },
        MetadataRecord::Config {
            resource: ConfigResource::Broker(-1),
            name: "log.retention.bytes".into(),
            value: None,
        },
        MetadataRecord::Config {
            resource: ConfigResource::Group("payments".into()),
            name: "consumer.session.timeout.ms".into(),
            value: Some("50000".into()),
        },
        MetadataRecord::RemoveTopic { topic_id: uuid(77) },
        MetadataRecord::ProducerIds {
            broker_id: 3,
            next_block_start: i64::MAX,
            block_size: i64::MIN,
        },
    ]
}

/// The records a CreateTopics of one topic with 3 partitions and replication factor 3 commits.
fn create_topic_batch() -> Vec<MetadataRecord> {
    let topic_id = uuid(0x5a17_0b4e_11d2_4c3f_9a8e_2f3c_4d5e_6f70);
    let mut batch = vec![MetadataRecord::Topic {
        name: "orders".into(),
        topic_id,
    }];
    for p in 0..3 {
        let replicas: Vec<i32> = (0..3).map(|i| (p + i) % 3 + 1).collect();
        batch.push(MetadataRecord::Partition {
            topic_id,
            partition: p,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
            adding_replicas: vec![],
            removing_replicas: vec![],
        });
    }
    batch
}

/// Record header bytes: type id, version, body length (all below 128 here).
fn record_bytes(id: u8, version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![id, version];
    put_uvarint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

fn batch_of(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![BATCH_MAGIC, BATCH_FORMAT_VERSION, records.len() as u8];
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

#[test]
fn every_variant_and_field_round_trips() {
    let records = every_variant();
    let bytes = encode_batch(&records);
    assert_eq!(bytes[0], BATCH_MAGIC);
    assert_eq!(bytes[1], BATCH_FORMAT_VERSION);
    assert_eq!(decode_batch(&bytes).unwrap(), records);
    assert_eq!(decode_stored_batch(&bytes).unwrap(), records);
    // One at a time too, so no field leans on a neighbour.
    for record in &records {
        let one = std::slice::from_ref(record);
        assert_eq!(decode_batch(&encode_batch(one)).unwrap(), one);
    }
    assert_eq!(decode_batch(&encode_batch(&[])).unwrap(), []);
}

#[test]
fn type_ids_are_the_documented_ones() {
    let ids: Vec<u8> = every_variant()
        .iter()
        .map(|r| encode_batch(std::slice::from_ref(r))[3])
        .collect();
    assert_eq!(
        ids,
        [1, 2, 3, 10, 11, 12, 13, 14, 15, 15, 4, 5, 6, 7, 7, 7, 8, 9]
    );
}

#[test]
fn json_batch_as_the_old_code_wrote_it_still_decodes() {
    // Byte for byte what `serde_json::to_vec(&records)` wrote before the binary format.
    let old = br#"[{"type":"Cluster","cluster_id":"AAAAAAAAAAAAAAAAAAAAAA"},{"type":"RegisterBroker","broker_id":1,"host":"localhost","port":9092,"rack":null},{"type":"Topic","name":"t","topic_id":"00000000-0000-0000-0000-00000000002a"},{"type":"Partition","topic_id":"00000000-0000-0000-0000-00000000002a","partition":0,"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":3,"partition_epoch":4,"eligible_leader_replicas":[2]},{"type":"Config","resource":{"Topic":"t"},"name":"cleanup.policy","value":"compact"},{"type":"ProducerIds","broker_id":1,"next_block_start":1000,"block_size":1000}]"#;
    let records = decode_stored_batch(old).unwrap();
    assert_eq!(
        records,
        [
            MetadataRecord::Cluster {
                cluster_id: "AAAAAAAAAAAAAAAAAAAAAA".into()
            },
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                host: "localhost".into(),
                port: 9092,
                rack: None,
                listeners: vec![],
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: uuid(42),
            },
            MetadataRecord::Partition {
                topic_id: uuid(42),
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1],
                leader: 1,
                leader_epoch: 3,
                partition_epoch: 4,
                eligible_leader_replicas: vec![2],
                last_known_elr: vec![],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "cleanup.policy".into(),
                value: Some("compact".into()),
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_block_start: 1000,
                block_size: 1000,
            },
        ]
    );
    // The JSON the serde derives write today is still read as well.
    let json = serde_json::to_vec(&every_variant()).unwrap();
    assert_eq!(decode_stored_batch(&json).unwrap(), every_variant());
    assert!(decode_stored_batch(br#"[{"type":"FromTheFuture"}]"#).is_err());
}

#[test]
fn a_newer_record_version_has_its_unknown_trailing_fields_skipped() {
    let mut body = Vec::new();
    put_i32(&mut body, 5);
    let mut newer = body.clone();
    newer.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let next = MetadataRecord::UnfenceBroker { broker_id: 6 };
    let mut next_body = Vec::new();
    encode_body(&mut next_body, &next);
    let bytes = batch_of(&[
        record_bytes(TYPE_FENCE_BROKER as u8, 1, &newer),
        record_bytes(TYPE_UNFENCE_BROKER as u8, 0, &next_body),
    ]);
    assert_eq!(
        decode_batch(&bytes).unwrap(),
        [MetadataRecord::FenceBroker { broker_id: 5 }, next]
    );
    // The same bytes in a record of a version this reader knows are corruption.
    let known = batch_of(&[record_bytes(TYPE_FENCE_BROKER as u8, 0, &newer)]);
    let err = decode_batch(&known).unwrap_err();
    assert!(err.reason.contains("4 bytes left"), "{err}");
}

#[test]
fn trailing_fields_absent_from_an_older_body_take_their_defaults() {
    let full = MetadataRecord::Partition {
        topic_id: uuid(9),
        partition: 1,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2],
        leader: 1,
        leader_epoch: 2,
        partition_epoch: 3,
        eligible_leader_replicas: vec![],
        last_known_elr: vec![],
        adding_replicas: vec![],
        removing_replicas: vec![],
    };
    let mut partition_body = Vec::new();
    encode_body(&mut partition_body, &full);
    // The four reassignment / ELR counts are the last four bytes: a body without them.
    let short = &partition_body[..partition_body.len() - 4];
    let bytes = batch_of(&[record_bytes(TYPE_PARTITION as u8, 0, short)]);
    assert_eq!(decode_batch(&bytes).unwrap(), [full]);
    let broker = MetadataRecord::RegisterBroker {
        broker_id: 1,
        host: "h".into(),
        port: 1,
        rack: None,
        listeners: vec![],
    };
    let mut body = Vec::new();
    encode_body(&mut body, &broker);
    let bytes = batch_of(&[record_bytes(
        TYPE_REGISTER_BROKER as u8,
        0,
        &body[..body.len() - 1],
    )]);
    assert_eq!(decode_batch(&bytes).unwrap(), [broker]);
    // A field of the first release is never optional.
    // (Here the body ends inside `replicas`.)
    let bytes = batch_of(&[record_bytes(TYPE_PARTITION as u8, 0, &partition_body[..20])]);
    assert!(decode_batch(&bytes)
        .unwrap_err()
        .reason
        .contains("truncated"));
}

#[test]
fn bad_headers_and_bodies_are_errors() {
    let valid = encode_batch(&every_variant());
    let reason = |bytes: &[u8]| decode_batch(bytes).unwrap_err().reason;

    assert!(reason(&[]).contains("truncated"));
    assert!(reason(b"[]").contains("magic"));
    let mut newer = valid.clone();
    newer[1] = BATCH_FORMAT_VERSION + 1;
    assert!(reason(&newer).contains("batch format version 2"));
    assert!(decode_stored_batch(&newer).is_err());
    let mut garbage = valid.clone();
    garbage.push(0);
    assert!(reason(&garbage).contains("after the last"));

    assert!(reason(&batch_of(&[record_bytes(16, 0, &[])])).contains("unknown record type id 16"));
    assert!(reason(&batch_of(&[record_bytes(0, 0, &[])])).contains("unknown record type id 0"));

    // Bad UTF-8 in a string.
    let bad_utf8 = batch_of(&[record_bytes(TYPE_CLUSTER as u8, 0, &[2, 0xc3, 0x28])]);
    assert!(reason(&bad_utf8).contains("UTF-8"));
    // Presence byte other than 0 / 1.
    let bad_option = batch_of(&[record_bytes(
        TYPE_CONFIG as u8,
        0,
        &[CONFIG_RESOURCE_BROKER, 2, 1, b'k', 2],
    )]);
    assert!(reason(&bad_option).contains("presence byte 2"));
    let bad_resource = batch_of(&[record_bytes(TYPE_CONFIG as u8, 0, &[9, 0, 0])]);
    assert!(reason(&bad_resource).contains("config resource tag 9"));
    // A port above u16 and an i32 above u32.
    let big_port = batch_of(&[record_bytes(
        TYPE_REGISTER_BROKER as u8,
        0,
        &[2, 0, 0x80, 0x80, 0x04, 0, 0],
    )]);
    assert!(reason(&big_port).contains("out of range"));
    let big_i32 = batch_of(&[record_bytes(
        TYPE_FENCE_BROKER as u8,
        0,
        &[0x80, 0x80, 0x80, 0x80, 0x10],
    )]);
    assert!(reason(&big_i32).contains("out of range"));
    // Varints: overlong, longer than 10 bytes, above 64 bits.
    assert!(reason(&[BATCH_MAGIC, 1, 0x80, 0x00]).contains("overlong"));
    assert!(reason(&[
        BATCH_MAGIC,
        1,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0x02
    ])
    .contains("overflows"));
    // Counts that cannot fit in what is left are refused before any allocation.
    let mut huge = vec![BATCH_MAGIC, 1];
    put_uvarint(&mut huge, u64::MAX);
    assert!(reason(&huge).contains("cannot fit"));
    let mut huge_list = Vec::new();
    huge_list.extend_from_slice(uuid(1).as_bytes());
    huge_list.push(0);
    put_uvarint(&mut huge_list, 1 << 40);
    assert!(reason(&batch_of(&[record_bytes(
        TYPE_PARTITION as u8,
        0,
        &huge_list
    )]))
    .contains("cannot fit"));
    // A body longer than the batch.
    assert!(reason(&[BATCH_MAGIC, 1, 1, 1, 0, 100, 0]).contains("record body of 100 bytes"));
}

#[test]
fn every_truncation_of_a_valid_batch_is_an_error() {
    let bytes = encode_batch(&every_variant());
    for len in 0..bytes.len() {
        assert!(
            decode_batch(&bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

/// `cargo test -p strom-metadata size_of_a_create_topic_batch -- --nocapture` prints the figure.
#[test]
fn size_of_a_create_topic_batch() {
    let batch = create_topic_batch();
    let json = serde_json::to_vec(&batch).unwrap().len();
    let binary = encode_batch(&batch).len();
    println!(
        "create topic, 3 partitions, RF 3 ({} records): JSON {json} bytes, binary {binary} bytes, \
         {:.1}x smaller",
        batch.len(),
        json as f64 / binary as f64
    );
    assert_eq!(decode_batch(&encode_batch(&batch)).unwrap(), batch);
    assert!(binary * 4 < json, "binary {binary} vs JSON {json}");
}

fn small_vec() -> impl Strategy<Value = Vec<i32>> {
    prop::collection::vec(any::<i32>(), 0..5)
}

/// Any record of any variant, every field drawn from its whole range.
fn any_record() -> impl Strategy<Value = MetadataRecord> {
    let text = || ".{0,12}";
    let endpoint = (text(), text(), any::<u16>()).prop_map(|(name, host, port)| BrokerEndpoint {
        name,
        host,
        port,
    });
    prop_oneof![
        text().prop_map(|cluster_id| MetadataRecord::Cluster { cluster_id }),
        (
            any::<i32>(),
            text(),
            any::<u16>(),
            prop::option::of(text()),
            prop::collection::vec(endpoint, 0..4)
        )
            .prop_map(|(broker_id, host, port, rack, listeners)| {
                MetadataRecord::RegisterBroker {
                    broker_id,
                    host,
                    port,
                    rack,
                    listeners,
                }
            }),
        any::<i32>().prop_map(|broker_id| MetadataRecord::FenceBroker { broker_id }),
        any::<i32>().prop_map(|broker_id| MetadataRecord::UnregisterBroker { broker_id }),
        (
            text(),
            any::<i8>(),
            prop::collection::vec(any::<u8>(), 0..40),
            any::<i32>()
        )
            .prop_map(|(user, mechanism, key, iterations)| {
                MetadataRecord::ScramCredential {
                    user,
                    mechanism,
                    salt: key.iter().rev().copied().collect(),
                    stored_key: key.clone(),
                    server_key: key,
                    iterations,
                }
            }),
        (text(), any::<i8>()).prop_map(|(user, mechanism)| MetadataRecord::RemoveScramCredential {
            user,
            mechanism
        }),
        (
            any::<u128>(),
            (1i8..8, 3i8..5, 2i8..15, 2i8..4),
            (text(), text(), text())
        )
            .prop_map(
                |(id, (rt, pt, op, perm), (resource_name, principal, host))| {
                    use crate::acl::*;
                    MetadataRecord::Acl {
                        id: uuid(id),
                        binding: AclBinding {
                            resource_type: ResourceType::from_code(rt).unwrap(),
                            resource_name,
                            pattern_type: PatternType::from_code(pt).unwrap(),
                            principal,
                            host,
                            operation: AclOperation::from_code(op).unwrap(),
                            permission: AclPermission::from_code(perm).unwrap(),
                        },
                    }
                }
            ),
        any::<u128>().prop_map(|id| MetadataRecord::RemoveAcl { id: uuid(id) }),
        (
            prop::collection::vec((text(), prop::option::of(text())), 0..3),
            text(),
            prop::option::of(any::<u64>())
        )
            .prop_map(
                |(components, key, value_bits)| MetadataRecord::ClientQuota {
                    entity: crate::quota::QuotaEntity(components),
                    key,
                    value_bits,
                }
            ),
        any::<i32>().prop_map(|broker_id| MetadataRecord::UnfenceBroker { broker_id }),
        (text(), any::<u128>()).prop_map(|(name, id)| MetadataRecord::Topic {
            name,
            topic_id: uuid(id),
        }),
        (
            (any::<u128>(), any::<i32>(), small_vec(), small_vec()),
            (any::<i32>(), any::<i32>(), any::<i32>()),
            (small_vec(), small_vec(), small_vec(), small_vec()),
        )
            .prop_map(
                |(
                    (id, partition, replicas, isr),
                    (leader, leader_epoch, partition_epoch),
                    (elr, last_known_elr, adding_replicas, removing_replicas),
                )| MetadataRecord::Partition {
                    topic_id: uuid(id),
                    partition,
                    replicas,
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch,
                    eligible_leader_replicas: elr,
                    last_known_elr,
                    adding_replicas,
                    removing_replicas,
                }
            ),
        (
            prop_oneof![
                text().prop_map(ConfigResource::Topic),
                any::<i32>().prop_map(ConfigResource::Broker),
                text().prop_map(ConfigResource::Group)
            ],
            text(),
            prop::option::of(text())
        )
            .prop_map(|(resource, name, value)| MetadataRecord::Config {
                resource,
                name,
                value
            }),
        any::<u128>().prop_map(|id| MetadataRecord::RemoveTopic { topic_id: uuid(id) }),
        (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(
            |(broker_id, next_block_start, block_size)| MetadataRecord::ProducerIds {
                broker_id,
                next_block_start,
                block_size,
            }
        ),
    ]
}

/// What a decoder made of hostile bytes must at least be stable: if it accepted them, the
/// records it produced encode to a batch that decodes to the same records.
fn assert_no_panic_and_stable(bytes: &[u8]) {
    if let Ok(records) = decode_batch(bytes) {
        assert_eq!(decode_batch(&encode_batch(&records)).unwrap(), records);
    }
    // The stored-batch reader takes the JSON path for anything without the magic byte.
    let _ = decode_stored_batch(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_batch_round_trips(records in prop::collection::vec(any_record(), 0..8)) {
        let bytes = encode_batch(&records);
        prop_assert_eq!(decode_batch(&bytes).unwrap(), records.clone());
        prop_assert_eq!(decode_stored_batch(&bytes).unwrap(), records);
    }

    #[test]
    fn truncated_or_corrupted_batches_are_errors_not_panics(
        records in prop::collection::vec(any_record(), 1..6),
        cut in any::<prop::sample::Index>(),
        flip_at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let bytes = encode_batch(&records);
        let len = cut.index(bytes.len());
        prop_assert!(decode_batch(&bytes[..len]).is_err());
        let mut corrupt = bytes.clone();
        corrupt[flip_at.index(bytes.len())] ^= flip;
        assert_no_panic_and_stable(&corrupt);
    }

    #[test]
    fn random_bytes_are_errors_not_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        with_header in any::<bool>(),
    ) {
        let mut input = if with_header { vec![BATCH_MAGIC, BATCH_FORMAT_VERSION] } else { vec![] };
        input.extend_from_slice(&bytes);
        assert_no_panic_and_stable(&input);
    }
}
