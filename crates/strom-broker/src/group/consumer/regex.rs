//! KIP-848 regex subscriptions (`SubscribedTopicRegex`): Kafka compiles them with RE2/J and
//! matches whole topic names (`Matcher.matches`); the `regex` crate speaks the same RE2
//! dialect (linear time, no backreferences or lookaround). Internal topics never match.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use regex::{Regex, RegexBuilder};

use super::TopicsView;

/// Kafka's internal topics (`Topic.isInternal`): a regex never subscribes a member to them.
const INTERNAL_TOPICS: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// The least time between two refreshes of one group's resolved regexes (Kafka's
/// `REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`). A regex the group does not know yet is resolved at
/// once; a change of the topic set is picked up by the first heartbeat after this interval.
pub const REFRESH_MIN_INTERVAL_MS: i64 = 10_000;

/// Bounds the compiled size of one pattern (a heartbeat must not build a huge automaton).
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a subscription regex anchored at both ends (a full match of the topic name, as
/// RE2/J's `matches`). `Err` holds the reason, for INVALID_REGULAR_EXPRESSION's message.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let build = |p: &str| {
        RegexBuilder::new(p)
            .size_limit(COMPILED_SIZE_LIMIT)
            .build()
            .map_err(|e| reason(&e))
    };
    // The pattern alone first, so an unbalanced group cannot close the anchoring one.
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

/// One line saying what is wrong (the crate's syntax errors draw the pattern over lines).
fn reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text.trim())
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled pattern exceeds {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// The names of the non-internal topics that `regex` matches in full.
pub fn resolve(regex: &Regex, topics: &TopicsView) -> BTreeSet<String> {
    topics
        .keys()
        .filter(|name| !INTERNAL_TOPICS.contains(&name.as_str()) && regex.is_match(name))
        .cloned()
        .collect()
}

/// A digest of the topic set (names and ids): a change means topics were created or deleted.
pub fn fingerprint(topics: &TopicsView) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, (id, _)) in topics {
        name.hash(&mut h);
        id.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn view(names: &[&str]) -> TopicsView {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), (Uuid::from_u128(i as u128 + 1), 1)))
            .collect()
    }

    #[test]
    fn patterns_match_whole_names_and_skip_internal_topics() {
        let topics = view(&[
            "orders-a",
            "orders-b",
            "xorders-a",
            "orders",
            "__consumer_offsets",
            "__transaction_state",
            "__share_group_state",
            "__other",
        ]);
        let names = |p: &str| -> Vec<String> {
            resolve(&compile(p).expect("valid"), &topics)
                .into_iter()
                .collect()
        };
        assert_eq!(names("orders-.*"), ["orders-a", "orders-b"]);
        assert_eq!(names("^orders-.*"), ["orders-a", "orders-b"]);
        // A full match: "orders" alone does not match "orders-a".
        assert_eq!(names("orders"), ["orders"]);
        assert_eq!(names("a|orders"), ["orders"]);
        assert_eq!(names("__.*"), ["__other"]);
        assert_eq!(
            names(".*"),
            ["__other", "orders", "orders-a", "orders-b", "xorders-a"]
        );
    }

    #[test]
    fn invalid_patterns_are_refused_with_a_reason() {
        for bad in [
            "(orders",
            "orders)|(x",
            "[a-",
            "a{2,1}",
            "(?<=a)b",
            "(a)\\1",
        ] {
            let err = compile(bad).expect_err(bad);
            assert!(!err.is_empty() && !err.contains('\n'), "{bad}: {err}");
        }
        assert_eq!(
            compile("[").err().as_deref(),
            Some("unclosed character class")
        );
        let huge = format!("({})", "a{1000}".repeat(50));
        assert!(compile(&huge).is_err(), "the compiled size is bounded");
    }

    #[test]
    fn the_fingerprint_moves_when_topics_come_and_go() {
        let a = fingerprint(&view(&["x", "y"]));
        assert_eq!(a, fingerprint(&view(&["x", "y"])));
        assert_ne!(a, fingerprint(&view(&["x", "y", "z"])));
        assert_ne!(a, fingerprint(&view(&["x"])));
    }
}
