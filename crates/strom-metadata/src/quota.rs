//! Client quotas (KIP-546 storage, KIP-55 / KIP-124 semantics): quota values per entity —
//! a user, a client id, their combination, or their defaults — stored in the metadata log
//! (record type 15), and the resolution Kafka uses to pick the quota that applies to a
//! connection's (user, client id).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// An entity: its components by type (`user`, `client-id`, `ip`), each a name or `None` for
/// the default entity of that type. Kept sorted by type, so one entity has one form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntity(pub Vec<(String, Option<String>)>);

impl QuotaEntity {
    pub fn new(mut components: Vec<(String, Option<String>)>) -> QuotaEntity {
        components.sort();
        QuotaEntity(components)
    }

    pub fn component(&self, entity_type: &str) -> Option<&Option<String>> {
        self.0
            .iter()
            .find(|(t, _)| t == entity_type)
            .map(|(_, name)| name)
    }

    /// Why Kafka would refuse this entity (INVALID_REQUEST), if it would: known types, each
    /// at most once, `ip` alone, and no empty names.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.0.is_empty() {
            return Some("the entity has no components".into());
        }
        for (i, (t, name)) in self.0.iter().enumerate() {
            if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
                return Some(format!("unknown entity type '{t}'"));
            }
            if self.0[..i].iter().any(|(u, _)| u == t) {
                return Some(format!("entity type '{t}' appears twice"));
            }
            if name.as_deref() == Some("") && t != CLIENT_ID {
                return Some(format!("empty {t} name"));
            }
        }
        if self.component(IP).is_some() && self.0.len() > 1 {
            return Some("an ip entity cannot be combined with another".into());
        }
        None
    }

    /// The quota keys valid for this entity.
    pub fn valid_keys(&self) -> &'static [&'static str] {
        if self.component(IP).is_some() {
            &[CONNECTION_CREATION_RATE]
        } else {
            &[
                PRODUCER_BYTE_RATE,
                CONSUMER_BYTE_RATE,
                REQUEST_PERCENTAGE,
                CONTROLLER_MUTATION_RATE,
            ]
        }
    }
}

/// The quota values of every entity that has any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuotas {
    /// Values as f64 bits (so the image stays `Eq`).
    by_entity: BTreeMap<QuotaEntity, BTreeMap<String, u64>>,
}

impl ClientQuotas {
    pub fn set(&mut self, entity: &QuotaEntity, key: &str, value: Option<f64>) {
        match value {
            Some(v) => {
                self.by_entity
                    .entry(entity.clone())
                    .or_default()
                    .insert(key.to_owned(), v.to_bits());
            }
            None => {
                if let Some(values) = self.by_entity.get_mut(entity) {
                    values.remove(key);
                    if values.is_empty() {
                        self.by_entity.remove(entity);
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_entity.is_empty()
    }

    pub fn get(&self, entity: &QuotaEntity, key: &str) -> Option<f64> {
        self.by_entity
            .get(entity)?
            .get(key)
            .map(|b| f64::from_bits(*b))
    }

    /// Every entity with its values.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, Vec<(&str, f64)>)> {
        self.by_entity.iter().map(|(e, values)| {
            (
                e,
                values
                    .iter()
                    .map(|(k, v)| (k.as_str(), f64::from_bits(*v)))
                    .collect(),
            )
        })
    }

    /// The quota `key` that applies to a connection of `user` with `client_id`, in Kafka's
    /// order of precedence (most specific first): user and client id, user and default
    /// client, user, default user and client id, default user and default client, default
    /// user, client id, default client. `None`: unlimited.
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<f64> {
        self.resolve_scoped(key, user, client_id).map(|(v, _)| v)
    }

    /// `resolve`, with who shares the quota: the matched entity's components (a default
    /// user quota applies to each user on their own, so its scope is still "per user").
    /// The scope is `(per user, per client id)`.
    pub fn resolve_scoped(
        &self,
        key: &str,
        user: &str,
        client_id: &str,
    ) -> Option<(f64, (bool, bool))> {
        if self.by_entity.is_empty() {
            return None;
        }
        let u = |name: Option<&str>| (USER.to_owned(), name.map(str::to_owned));
        let c = |name: Option<&str>| (CLIENT_ID.to_owned(), name.map(str::to_owned));
        let candidates = [
            vec![u(Some(user)), c(Some(client_id))],
            vec![u(Some(user)), c(None)],
            vec![u(Some(user))],
            vec![u(None), c(Some(client_id))],
            vec![u(None), c(None)],
            vec![u(None)],
            vec![c(Some(client_id))],
            vec![c(None)],
        ];
        candidates.into_iter().find_map(|components| {
            let entity = QuotaEntity::new(components);
            let scope = (
                entity.component(USER).is_some(),
                entity.component(CLIENT_ID).is_some(),
            );
            self.get(&entity, key).map(|v| (v, scope))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::new(
            parts
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_owned)))
                .collect(),
        )
    }

    #[test]
    fn the_most_specific_quota_wins() {
        let mut q = ClientQuotas::default();
        q.set(&entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, Some(1.0));
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "app"), Some(1.0));
        q.set(&entity(&[(USER, None)]), PRODUCER_BYTE_RATE, Some(2.0));
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "app"), Some(2.0));
        q.set(
            &entity(&[(USER, Some("alice"))]),
            PRODUCER_BYTE_RATE,
            Some(3.0),
        );
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "app"), Some(3.0));
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "bob", "app"), Some(2.0));
        q.set(
            &entity(&[(CLIENT_ID, Some("app")), (USER, Some("alice"))]),
            PRODUCER_BYTE_RATE,
            Some(4.0),
        );
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "app"), Some(4.0));
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "other"), Some(3.0));
        assert_eq!(q.resolve(CONSUMER_BYTE_RATE, "alice", "app"), None);
        q.set(&entity(&[(USER, Some("alice"))]), PRODUCER_BYTE_RATE, None);
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "other"), Some(2.0));
    }

    #[test]
    fn bad_entities_are_named() {
        assert!(entity(&[("group", Some("g"))]).invalid_reason().is_some());
        assert!(entity(&[(IP, Some("1.2.3.4")), (USER, Some("a"))])
            .invalid_reason()
            .is_some());
        assert!(entity(&[]).invalid_reason().is_some());
        assert!(entity(&[(USER, Some(""))]).invalid_reason().is_some());
        assert_eq!(
            entity(&[(USER, None), (CLIENT_ID, Some("c"))]).invalid_reason(),
            None
        );
    }
}
