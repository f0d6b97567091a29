//! Topics a source connector writes to are created when missing (KIP-158): with
//! `topic.creation.default.replication.factor` and `.partitions` set (and the worker's
//! `topic.creation.enable`, default true), a topic gets the settings of the first group in
//! `topic.creation.groups` whose `include` regexes match it and `exclude` ones do not, else
//! the `default` group's; other `topic.creation.<group>.<key>` entries become topic configs.

use std::collections::HashSet;

use regex::Regex;
use strom_client::{Admin, ClientConfig, NewTopic};

use crate::config::{get_bool, get_list, with_prefix, Props};
use crate::error::{ConnectError, Result};

/// One group's settings.
#[derive(Debug, Clone)]
struct Group {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    replication_factor: i16,
    partitions: i32,
    configs: Vec<(String, String)>,
}

/// The settings keys of a group that are not topic configs.
const OWN_KEYS: [&str; 4] = ["include", "exclude", "replication.factor", "partitions"];

fn invalid(key: &str, value: &str, why: &str) -> ConnectError {
    ConnectError::InvalidConfig(format!(
        "Invalid value {value} for configuration {key}: {why}"
    ))
}

fn regexes(props: &Props, key: &str) -> Result<Vec<Regex>> {
    get_list(props, key)
        .iter()
        .map(|r| Regex::new(&format!("^(?:{r})$")).map_err(|e| invalid(key, r, &e.to_string())))
        .collect()
}

fn number<T: std::str::FromStr + PartialOrd + From<i8>>(
    props: &Props,
    key: &str,
    required: bool,
    default: T,
) -> Result<T> {
    match props.get(key) {
        None if required => Err(ConnectError::InvalidConfig(format!(
            "Missing required configuration \"{key}\" which has no default value."
        ))),
        None => Ok(default),
        Some(v) => {
            let n: T = v
                .trim()
                .parse()
                .map_err(|_| invalid(key, v, "Not a number"))?;
            if n == T::from(-1) || n >= T::from(1) {
                Ok(n)
            } else {
                Err(invalid(
                    key,
                    v,
                    "must be -1 (the broker's default) or at least 1",
                ))
            }
        }
    }
}

fn group(props: &Props, name: &str, default: Option<&Group>) -> Result<Group> {
    let prefix = format!("topic.creation.{name}.");
    let own = with_prefix(props, &prefix);
    let required = default.is_none();
    let rf_key = format!("{prefix}replication.factor");
    let parts_key = format!("{prefix}partitions");
    let mut configs: Vec<(String, String)> = default.map(|d| d.configs.clone()).unwrap_or_default();
    for (k, v) in &own {
        if !OWN_KEYS.contains(&k.as_str()) {
            configs.retain(|(ck, _)| ck != k);
            configs.push((k.clone(), v.clone()));
        }
    }
    Ok(Group {
        include: regexes(props, &format!("{prefix}include"))?,
        exclude: regexes(props, &format!("{prefix}exclude"))?,
        replication_factor: number(
            props,
            &rf_key,
            required,
            default.map_or(-1, |d| d.replication_factor),
        )?,
        partitions: number(
            props,
            &parts_key,
            required,
            default.map_or(-1, |d| d.partitions),
        )?,
        configs,
    })
}

/// Creates missing topics for one source task.
pub struct TopicCreator {
    admin: Admin,
    groups: Vec<Group>,
    default: Group,
    known: HashSet<String>,
}

impl std::fmt::Debug for TopicCreator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicCreator")
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// Whether a connector asks for topic creation, and its settings are valid.
pub fn enabled(worker: &Props, connector: &Props) -> Result<bool> {
    let asked = connector
        .keys()
        .any(|k| k.starts_with("topic.creation.default."));
    if !asked || !get_bool(worker, "topic.creation.enable", true)? {
        return Ok(false);
    }
    let default = group(connector, "default", None)?;
    for name in get_list(connector, "topic.creation.groups") {
        group(connector, &name, Some(&default))?;
    }
    Ok(true)
}

impl TopicCreator {
    /// `None` when the connector does not ask for topic creation (or the worker forbids it).
    pub async fn from_config(
        bootstrap: &str,
        worker: &Props,
        connector: &Props,
    ) -> Result<Option<TopicCreator>> {
        if !enabled(worker, connector)? {
            return Ok(None);
        }
        let default = group(connector, "default", None)?;
        let groups = get_list(connector, "topic.creation.groups")
            .iter()
            .map(|g| group(connector, g, Some(&default)))
            .collect::<Result<_>>()?;
        Ok(Some(TopicCreator {
            admin: Admin::new(ClientConfig::new(bootstrap)).await?,
            groups,
            default,
            known: HashSet::new(),
        }))
    }

    /// Creates `topic` if it does not exist yet (once per topic per task).
    pub async fn ensure(&mut self, topic: &str) -> Result<()> {
        if self.known.contains(topic) {
            return Ok(());
        }
        let exists = self
            .admin
            .describe_topics(&[topic.to_owned()])
            .await
            .is_ok_and(|t| t.first().is_some_and(|t| !t.partitions.is_empty()));
        if !exists {
            let g = self
                .groups
                .iter()
                .find(|g| {
                    g.include.iter().any(|r| r.is_match(topic))
                        && !g.exclude.iter().any(|r| r.is_match(topic))
                })
                .unwrap_or(&self.default);
            let mut nt = NewTopic::new(topic, g.partitions, g.replication_factor);
            nt.configs = g.configs.clone();
            for (_, r) in self.admin.create_topics(&[nt], false).await? {
                match r {
                    Ok(()) => tracing::info!("created topic {topic} for a source connector"),
                    Err(e) if e.to_string().contains("TOPIC_ALREADY_EXISTS") => {}
                    Err(e) => {
                        return Err(ConnectError::Task(format!(
                            "Unable to create topic '{topic}': {e}"
                        )))
                    }
                }
            }
        }
        self.known.insert(topic.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn groups_inherit_the_default_and_are_checked() {
        let p = props(&[
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.default.partitions", "2"),
            ("topic.creation.default.cleanup.policy", "delete"),
            ("topic.creation.groups", "audit"),
            ("topic.creation.audit.include", "audit.*, log-[0-9]+"),
            ("topic.creation.audit.exclude", "audit-skip"),
            ("topic.creation.audit.partitions", "5"),
            ("topic.creation.audit.cleanup.policy", "compact"),
        ]);
        assert!(enabled(&Props::new(), &p).unwrap());
        let d = group(&p, "default", None).unwrap();
        let a = group(&p, "audit", Some(&d)).unwrap();
        assert_eq!((a.partitions, a.replication_factor), (5, 1));
        assert_eq!(
            a.configs,
            vec![("cleanup.policy".to_owned(), "compact".to_owned())]
        );
        assert!(a.include[1].is_match("log-12") && !a.include[1].is_match("log-1x"));
        assert!(!enabled(&props(&[("topic.creation.enable", "false")]), &p).unwrap());
        assert!(!enabled(&Props::new(), &Props::new()).unwrap());
        let e = enabled(
            &Props::new(),
            &props(&[("topic.creation.default.partitions", "0")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("replication.factor"), "{e}");
        let e = enabled(
            &Props::new(),
            &props(&[
                ("topic.creation.default.partitions", "0"),
                ("topic.creation.default.replication.factor", "1"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Invalid value 0 for configuration topic.creation.default.partitions: must be -1 (the broker's default) or at least 1");
    }
}
