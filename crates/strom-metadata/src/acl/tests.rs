use proptest::prelude::*;

use super::*;

fn binding(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    host: &str,
    operation: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: host.into(),
        operation,
        permission,
    }
}

fn index(bindings: &[AclBinding]) -> AclIndex {
    AclIndex::new(
        &bindings
            .iter()
            .enumerate()
            .map(|(i, b)| (Uuid::from_u128(i as u128 + 1), b.clone()))
            .collect(),
    )
}

fn strict() -> AuthorizerSettings {
    AuthorizerSettings::default()
}

use AclOperation::*;
use AclPermission::*;
use PatternType::*;
use ResourceType::*;

#[test]
fn deny_wins_over_allow_and_implied_describe_follows_read() {
    let idx = index(&[
        binding(Topic, "orders", Literal, "User:alice", "*", Read, Allow),
        binding(Topic, "ord", Prefixed, "User:bob", "*", All, Allow),
        binding(
            Topic, "orders", Literal, "User:bob", "10.0.0.9", Write, Deny,
        ),
    ]);
    let s = strict();
    let ok =
        |p: &str, h: &str, op, name: &str| idx.authorize(&s, p, h, op, Topic, name).is_allowed();
    assert!(ok("User:alice", "1.2.3.4", Read, "orders"));
    assert!(
        ok("User:alice", "1.2.3.4", Describe, "orders"),
        "READ implies DESCRIBE"
    );
    assert!(!ok("User:alice", "1.2.3.4", Write, "orders"));
    assert!(
        !ok("User:alice", "1.2.3.4", Read, "orders2"),
        "literal is exact"
    );
    assert!(ok("User:bob", "1.2.3.4", Write, "orders"), "prefixed ALL");
    assert!(
        !ok("User:bob", "10.0.0.9", Write, "orders"),
        "host-specific DENY wins"
    );
    assert!(
        ok("User:bob", "10.0.0.9", Read, "orders"),
        "DENY WRITE does not deny READ"
    );
    // No binding covers "payments": strict default denies, the permissive one allows.
    assert!(!ok("User:alice", "1.2.3.4", Read, "payments"));
    let open = AuthorizerSettings {
        allow_everyone_if_no_acl_found: true,
        ..strict()
    };
    assert!(idx
        .authorize(&open, "User:alice", "h", Read, Topic, "payments")
        .is_allowed());
    // "orders" has bindings, so the permissive default does not apply to a third user.
    assert!(!idx
        .authorize(&open, "User:carol", "h", Read, Topic, "orders")
        .is_allowed());
}

#[test]
fn deny_does_not_imply_and_alter_configs_implies_describe_configs() {
    let idx = index(&[
        binding(Topic, "*", Literal, "User:*", "*", AlterConfigs, Allow),
        binding(Topic, "t", Literal, "User:eve", "*", Read, Deny),
    ]);
    let s = strict();
    assert!(idx
        .authorize(&s, "User:x", "h", DescribeConfigs, Topic, "any")
        .is_allowed());
    // A DENY of READ does not deny DESCRIBE.
    assert!(!idx
        .authorize(&s, "User:eve", "h", Read, Topic, "t")
        .is_allowed());
    assert_eq!(
        idx.authorize(&s, "User:eve", "h", Describe, Topic, "t"),
        Decision::Denied(Reason::NoMatchingAllow)
    );
}

#[test]
fn super_users_pass_everything() {
    let idx = index(&[binding(
        Cluster,
        CLUSTER_RESOURCE_NAME,
        Literal,
        "User:*",
        "*",
        All,
        Deny,
    )]);
    let s = AuthorizerSettings {
        super_users: AuthorizerSettings::parse_super_users("User:admin; User:broker"),
        allow_everyone_if_no_acl_found: false,
    };
    assert_eq!(s.super_users, vec!["User:admin", "User:broker"]);
    assert!(idx
        .authorize(
            &s,
            "User:broker",
            "h",
            ClusterAction,
            Cluster,
            CLUSTER_RESOURCE_NAME
        )
        .is_allowed());
    assert!(!idx
        .authorize(
            &s,
            "User:alice",
            "h",
            Describe,
            Cluster,
            CLUSTER_RESOURCE_NAME
        )
        .is_allowed());
}

#[test]
fn invalid_bindings_are_named() {
    let good = binding(Topic, "t", Literal, "User:a", "*", Read, Allow);
    assert_eq!(good.invalid_reason(), None);
    for bad in [
        AclBinding {
            resource_type: ResourceType::Any,
            ..good.clone()
        },
        AclBinding {
            pattern_type: Match,
            ..good.clone()
        },
        AclBinding {
            operation: AclOperation::Any,
            ..good.clone()
        },
        AclBinding {
            permission: AclPermission::Any,
            ..good.clone()
        },
        AclBinding {
            principal: "alice".into(),
            ..good.clone()
        },
        AclBinding {
            resource_name: String::new(),
            ..good.clone()
        },
        AclBinding {
            resource_type: Cluster,
            resource_name: "other".into(),
            ..good.clone()
        },
        AclBinding {
            pattern_type: Prefixed,
            resource_name: "*".into(),
            ..good.clone()
        },
    ] {
        assert!(bad.invalid_reason().is_some(), "{bad}");
    }
}

#[test]
fn match_filters_select_what_applies_to_a_resource() {
    let bindings = [
        binding(Topic, "orders", Literal, "User:a", "*", Read, Allow),
        binding(Topic, "*", Literal, "User:a", "*", Read, Allow),
        binding(Topic, "ord", Prefixed, "User:a", "*", Read, Allow),
        binding(Topic, "pay", Prefixed, "User:a", "*", Read, Allow),
        binding(Group, "orders", Literal, "User:a", "*", Read, Allow),
    ];
    let filter = AclFilter {
        resource_type: Topic,
        resource_name: Some("orders".into()),
        pattern_type: Match,
        principal: None,
        host: None,
        operation: AclOperation::Any,
        permission: AclPermission::Any,
    };
    let hits: Vec<usize> = (0..bindings.len())
        .filter(|i| filter.matches(&bindings[*i]))
        .collect();
    assert_eq!(hits, vec![0, 1, 2]);
    let literal_only = AclFilter {
        pattern_type: Literal,
        ..filter.clone()
    };
    assert_eq!(
        (0..bindings.len())
            .filter(|i| literal_only.matches(&bindings[*i]))
            .collect::<Vec<_>>(),
        vec![0]
    );
    let any = AclFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        ..filter
    };
    assert!(bindings.iter().all(|b| any.matches(b)));
}

/// The plain reading of the rules, one binding at a time, to check the index against.
fn oracle(
    bindings: &[AclBinding],
    s: &AuthorizerSettings,
    principal: &str,
    host: &str,
    op: AclOperation,
    rt: ResourceType,
    name: &str,
) -> bool {
    if s.super_users.iter().any(|u| u == principal) {
        return true;
    }
    let covering: Vec<&AclBinding> = bindings.iter().filter(|b| b.covers(rt, name)).collect();
    if covering.is_empty() {
        return s.allow_everyone_if_no_acl_found;
    }
    let applying: Vec<&&AclBinding> = covering
        .iter()
        .filter(|b| {
            (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*")
        })
        .collect();
    let denied = applying
        .iter()
        .any(|b| b.permission == Deny && (b.operation == All || b.operation == op));
    let allowed = applying.iter().any(|b| {
        b.permission == Allow
            && (b.operation == All
                || b.operation == op
                || (op == Describe && matches!(b.operation, Read | Write | Delete | Alter))
                || (op == DescribeConfigs && b.operation == AlterConfigs))
    });
    !denied && allowed
}

fn arb_binding() -> impl Strategy<Value = AclBinding> {
    (
        prop_oneof![Just(Topic), Just(Group)],
        prop_oneof![Just("a"), Just("ab"), Just("abc"), Just("b"), Just("*")],
        prop_oneof![Just(Literal), Just(Prefixed)],
        prop_oneof![Just("User:x"), Just("User:y"), Just("User:*")],
        prop_oneof![Just("h1"), Just("*")],
        prop_oneof![
            prop::sample::select(AclOperation::CONCRETE.to_vec()),
            Just(All)
        ],
        prop_oneof![Just(Allow), Just(Deny)],
    )
        .prop_map(|(rt, name, pt, p, h, op, perm)| binding(rt, name, pt, p, h, op, perm))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The index decides exactly as the rules read one binding at a time.
    #[test]
    fn the_index_agrees_with_the_rules(
        bindings in prop::collection::vec(arb_binding(), 0..12),
        principal in prop_oneof![Just("User:x"), Just("User:y"), Just("User:z")],
        host in prop_oneof![Just("h1"), Just("h2")],
        op in prop::sample::select(AclOperation::CONCRETE.to_vec()),
        rt in prop_oneof![Just(Topic), Just(Group)],
        name in prop_oneof![Just("a"), Just("ab"), Just("abc"), Just("abd"), Just("b"), Just("c")],
        open in any::<bool>(),
    ) {
        let s = AuthorizerSettings { super_users: vec![], allow_everyone_if_no_acl_found: open };
        let idx = index(&bindings);
        prop_assert_eq!(
            idx.authorize(&s, principal, host, op, rt, name).is_allowed(),
            oracle(&bindings, &s, principal, host, op, rt, name)
        );
    }
}
