use super::*;

const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qk";
const DIR_1: &str = "pT4rQbWzQx2Yc0m1vJ8bAg";
const DIR_2: &str = "J8aAoR5iTbe4oEpdbFH0Lg";

/// A dynamic-quorum controller (or any roles) with its data in `dir`.
fn config(dir: &Path, roles: &str, quorum: &str) -> BrokerConfig {
    let listeners = match roles {
        "broker" => "PLAINTEXT://127.0.0.1:9092".to_string(),
        _ => "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093".to_string(),
    };
    let text = format!(
        "process.roles={roles}\nnode.id=1\n{quorum}\nlisteners={listeners}\ncontroller.listener.names=CONTROLLER\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\nlog.dirs={a},{b}\nmetadata.log.dir={m}\n",
        a = dir.join("a").display(),
        b = dir.join("b").display(),
        m = dir.join("meta").display(),
    );
    BrokerConfig::parse(&text, &[]).unwrap().0
}

const DYNAMIC: &str = "controller.quorum.bootstrap.servers=127.0.0.1:9093";

fn request(initial: Option<InitialControllers>) -> FormatRequest {
    FormatRequest {
        cluster_id: CLUSTER.into(),
        initial_controllers: initial,
        ignore_formatted: false,
    }
}

#[test]
fn standalone_writes_meta_properties_everywhere_and_itself_as_the_only_voter() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), "controller", DYNAMIC);
    let formatted = format(&c, &request(Some(InitialControllers::Standalone))).unwrap();
    assert_eq!(formatted.len(), 3, "log.dirs a, b and metadata.log.dir");
    let metas: Vec<MetaProperties> = ["a", "b", "meta"]
        .iter()
        .map(|d| read_meta_properties(&tmp.path().join(d)).unwrap().unwrap())
        .collect();
    for m in &metas {
        assert_eq!((m.node_id, m.cluster_id.as_str()), (1, CLUSTER));
        assert_eq!(validate_cluster_id(&m.directory_id), Ok(()));
    }
    assert_ne!(
        metas[0].directory_id, metas[1].directory_id,
        "one id per dir"
    );
    let text = std::fs::read_to_string(tmp.path().join("meta").join(META_PROPERTIES)).unwrap();
    assert!(text.contains("version=1"), "{text}");
    let read = read_formatted(&c).unwrap();
    assert_eq!(read.meta, metas[2]);
    let voters = read.initial_voters.unwrap();
    assert_eq!(voters.len(), 1);
    assert_eq!(voters[&1].addr, "127.0.0.1:9093");
    assert_eq!(
        voters[&1].directory_id.as_deref(),
        Some(metas[2].directory_id.as_str())
    );
}

#[test]
fn initial_controllers_set_the_voters_and_this_nodes_directory_id() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), "broker,controller", DYNAMIC);
    let voters =
        parse_initial_controllers(&format!("1@127.0.0.1:9093:{DIR_1},2@[::1]:9094:{DIR_2}"))
            .unwrap();
    assert_eq!(voters[1].endpoint, "[::1]:9094");
    format(&c, &request(Some(InitialControllers::Voters(voters)))).unwrap();
    let read = read_formatted(&c).unwrap();
    assert_eq!(read.meta.directory_id, DIR_1);
    let initial = read.initial_voters.unwrap();
    assert_eq!(initial.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(initial[&2].directory_id.as_deref(), Some(DIR_2));
}

#[test]
fn no_initial_controllers_and_brokers() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), "controller", DYNAMIC);
    format(&c, &request(Some(InitialControllers::None))).unwrap();
    assert_eq!(
        read_formatted(&c).unwrap().initial_voters,
        Some(BTreeMap::new())
    );
    // A broker-only node formats without a voter set and reads none.
    let tmp = tempfile::tempdir().unwrap();
    let b = config(tmp.path(), "broker", DYNAMIC);
    format(&b, &request(None)).unwrap();
    assert_eq!(read_formatted(&b).unwrap().initial_voters, None);
}

#[test]
fn formatting_twice_is_refused_unless_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), "controller", DYNAMIC);
    format(&c, &request(Some(InitialControllers::Standalone))).unwrap();
    let before = read_meta_properties(&tmp.path().join("meta")).unwrap();
    let err = format(&c, &request(Some(InitialControllers::Standalone))).unwrap_err();
    assert!(
        matches!(err, StorageError::AlreadyFormatted { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--ignore-formatted"), "{err}");
    let mut again = request(Some(InitialControllers::Standalone));
    again.ignore_formatted = true;
    assert!(format(&c, &again).unwrap().is_empty());
    assert_eq!(
        read_meta_properties(&tmp.path().join("meta")).unwrap(),
        before
    );
}

#[test]
fn flags_that_do_not_fit_the_configuration_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            config(tmp.path(), "controller", DYNAMIC),
            None,
            "pass one of --standalone",
        ),
        (
            config(
                tmp.path(),
                "controller",
                "controller.quorum.voters=1@127.0.0.1:9093",
            ),
            Some(InitialControllers::Standalone),
            "static quorum",
        ),
        (
            config(tmp.path(), "broker", DYNAMIC),
            Some(InitialControllers::None),
            "no controller",
        ),
        (
            config(tmp.path(), "controller", DYNAMIC),
            Some(InitialControllers::Voters(
                parse_initial_controllers(&format!("2@h:9093:{DIR_2}")).unwrap(),
            )),
            "does not name this node (node.id=1)",
        ),
    ];
    for (c, initial, expected) in cases {
        let err = format(&c, &request(initial)).unwrap_err().to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }
    let c = config(tmp.path(), "controller", DYNAMIC);
    let mut bad_id = request(Some(InitialControllers::Standalone));
    bad_id.cluster_id = "not-a-uuid".into();
    let err = format(&c, &bad_id).unwrap_err().to_string();
    assert!(err.contains("invalid cluster id 'not-a-uuid'"), "{err}");
    // Nothing was written by any refused attempt.
    assert!(read_meta_properties(&tmp.path().join("meta"))
        .unwrap()
        .is_none());
}

#[test]
fn bad_initial_controllers_name_the_entry() {
    for (value, expected) in [
        ("", "no controllers listed"),
        ("1@h:9093", "is not a directory id"),
        (&format!("x@h:9093:{DIR_1}") as &str, "'x' is not a node id"),
        (
            &format!("1h:9093:{DIR_1}"),
            "expected ID@HOST:PORT:DIRECTORY_ID",
        ),
        (&format!("1@h:{DIR_1}"), "is not HOST:PORT"),
        (
            &format!("1@h:9093:{DIR_1},1@g:9093:{DIR_2}"),
            "node 1 is listed twice",
        ),
        (
            &format!("1@h:9093:{DIR_1},2@g:9093:{DIR_1}"),
            "listed twice",
        ),
    ] {
        let err = parse_initial_controllers(value).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{value}: expected '{expected}' in: {err}"
        );
    }
}

#[test]
fn an_unformatted_or_foreign_directory_is_refused_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), "controller", DYNAMIC);
    let err = read_formatted(&c).unwrap_err().to_string();
    assert!(
        err.contains("is not formatted") && err.contains("strom storage format"),
        "{err}"
    );
    format(&c, &request(Some(InitialControllers::Standalone))).unwrap();
    // The same directories under another node.id.
    let other = c.with_static_value("node.id", "2").unwrap();
    let err = read_formatted(&other).unwrap_err().to_string();
    assert!(
        err.contains("node.id=1") && err.contains("configuration says 2"),
        "{err}"
    );
    let other = c.with_static_value("cluster.id", DIR_2).unwrap();
    let err = read_formatted(&other).unwrap_err().to_string();
    assert!(err.contains("cluster.id"), "{err}");
    // A hand-edited meta.properties is reported, not a panic.
    std::fs::write(tmp.path().join("a").join(META_PROPERTIES), "node.id=one\n").unwrap();
    let err = read_formatted(&c).unwrap_err().to_string();
    assert!(err.contains("node.id is not a number"), "{err}");
}

#[test]
fn kafka_uuid_strings_round_trip() {
    let zero = uuid::Uuid::nil();
    assert_eq!(uuid_to_kafka_string(&zero), "AAAAAAAAAAAAAAAAAAAAAA");
    for s in [DIR_1, DIR_2] {
        let uuid = uuid_from_kafka_string(s).unwrap();
        assert_eq!(uuid_to_kafka_string(&uuid), s);
    }
    for _ in 0..100 {
        let uuid = uuid::Uuid::new_v4();
        assert_eq!(
            uuid_from_kafka_string(&uuid_to_kafka_string(&uuid)),
            Some(uuid)
        );
    }
    assert_eq!(uuid_from_kafka_string("short"), None);
    assert_eq!(uuid_from_kafka_string("AAAAAAAAAAAAAAAAAAAAA!"), None);
    // Trailing bits past the 128 are ignored, as Java's decoder ignores them.
    assert!(uuid_from_kafka_string(CLUSTER).is_some());
}
