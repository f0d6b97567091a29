//! AlterUserScramCredentials (KIP-554): SCRAM credentials set and deleted per user and
//! mechanism, validated as Kafka does, one result per user. The broker derives StoredKey and
//! ServerKey from the salted password the client sends, so no password reaches the log.

use serde::{Deserialize, Serialize};

use super::Controller;
use crate::error::ControllerError;
use crate::records::MetadataRecord;

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// Kafka's ScramMechanism type ids: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
pub fn mechanism_name(id: i8) -> Option<&'static str> {
    match id {
        1 => Some("SCRAM-SHA-256"),
        2 => Some("SCRAM-SHA-512"),
        _ => None,
    }
}

/// One result per user named in an AlterUserScramCredentials request.
pub type UserResults = Vec<(String, Result<(), ControllerError>)>;

/// One credential to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Controller {
    /// Deletes and sets SCRAM credentials; one result per user named, in first-seen order.
    /// A user named twice (for the same mechanism, or in both lists) is refused as
    /// DUPLICATE_RESOURCE; the other users' changes commit together.
    pub fn alter_user_scram_credentials(
        &mut self,
        deletions: Vec<(String, i8)>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Result<UserResults, ControllerError> {
        let image = self.image();
        let mut users: Vec<String> = Vec::new();
        let mut seen: std::collections::HashMap<(String, i8), usize> = Default::default();
        let mut count = |user: &str, mechanism: i8, users: &mut Vec<String>| {
            if !users.iter().any(|u| u == user) {
                users.push(user.to_owned());
            }
            *seen.entry((user.to_owned(), mechanism)).or_default() += 1;
        };
        for (user, mechanism) in &deletions {
            count(user, *mechanism, &mut users);
        }
        for u in &upsertions {
            count(&u.user, u.mechanism, &mut users);
        }
        let duplicated = |user: &str| seen.iter().any(|((u, _), n)| u == user && *n > 1);
        let mut outcome: Vec<(String, Result<(), ControllerError>)> =
            users.iter().map(|u| (u.clone(), Ok(()))).collect();
        let mut fail = |user: &str, e: ControllerError| {
            if let Some((_, r)) = outcome.iter_mut().find(|(u, r)| u == user && r.is_ok()) {
                *r = Err(e);
            }
        };
        for user in &users {
            if duplicated(user) {
                fail(
                    user,
                    ControllerError::DuplicateResource {
                        reason: format!("user '{user}' appears more than once for one mechanism"),
                    },
                );
            }
        }
        for (user, mechanism) in &deletions {
            if user.is_empty() {
                fail(user, unacceptable("Username must not be empty"));
            } else if mechanism_name(*mechanism).is_none() {
                fail(user, unsupported(*mechanism));
            } else if image.scram_credential(user, *mechanism).is_none() {
                fail(
                    user,
                    ControllerError::ResourceNotFound {
                        reason: format!(
                            "attempt to delete a user credential that does not exist: {user} {}",
                            mechanism_name(*mechanism).unwrap_or("?")
                        ),
                    },
                );
            }
        }
        for u in &upsertions {
            if u.user.is_empty() {
                fail(&u.user, unacceptable("Username must not be empty"));
            } else if mechanism_name(u.mechanism).is_none() {
                fail(&u.user, unsupported(u.mechanism));
            } else if u.iterations < MIN_ITERATIONS {
                fail(
                    &u.user,
                    unacceptable(&format!("Too few iterations (minimum {MIN_ITERATIONS})")),
                );
            } else if u.iterations > MAX_ITERATIONS {
                fail(
                    &u.user,
                    unacceptable(&format!("Too many iterations (maximum {MAX_ITERATIONS})")),
                );
            } else if u.salt.is_empty() || u.stored_key.is_empty() || u.server_key.is_empty() {
                fail(
                    &u.user,
                    unacceptable("Credential must have a salt and keys"),
                );
            }
        }
        let ok = |user: &str| outcome.iter().any(|(u, r)| u == user && r.is_ok());
        let mut records = Vec::new();
        for (user, mechanism) in deletions {
            if ok(&user) {
                records.push(MetadataRecord::RemoveScramCredential { user, mechanism });
            }
        }
        for u in upsertions {
            if ok(&u.user) {
                records.push(MetadataRecord::ScramCredential {
                    user: u.user,
                    mechanism: u.mechanism,
                    salt: u.salt,
                    stored_key: u.stored_key,
                    server_key: u.server_key,
                    iterations: u.iterations,
                });
            }
        }
        if !records.is_empty() {
            self.commit(records)?;
        }
        Ok(outcome)
    }
}

fn unacceptable(reason: &str) -> ControllerError {
    ControllerError::UnacceptableCredential {
        reason: reason.to_owned(),
    }
}

fn unsupported(mechanism: i8) -> ControllerError {
    ControllerError::UnsupportedSaslMechanism {
        reason: format!("unknown SCRAM mechanism type {mechanism}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::elr_tests::open;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            user: user.into(),
            mechanism,
            iterations,
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
        }
    }

    #[test]
    fn credentials_are_validated_per_user_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(dir.path(), &[1]);
        let results = c
            .alter_user_scram_credentials(
                vec![("ghost".into(), 1)],
                vec![
                    upsert("alice", 1, 4096),
                    upsert("alice", 2, 8192),
                    upsert("bob", 1, 100),
                    upsert("carol", 1, 20000),
                    upsert("dave", 3, 4096),
                    upsert("erin", 1, 4096),
                    upsert("erin", 1, 5000),
                ],
            )
            .unwrap();
        let code = |user: &str| {
            results
                .iter()
                .find(|(u, _)| u == user)
                .map(|(_, r)| r.as_ref().err().map(|e| format!("{e:?}")))
                .unwrap()
        };
        assert_eq!(code("alice"), None);
        assert!(code("ghost").unwrap().starts_with("ResourceNotFound"));
        assert!(code("bob").unwrap().contains("Too few iterations"));
        assert!(code("carol").unwrap().contains("Too many iterations"));
        assert!(code("dave")
            .unwrap()
            .starts_with("UnsupportedSaslMechanism"));
        assert!(code("erin").unwrap().starts_with("DuplicateResource"));
        assert_eq!(results.len(), 6, "one result per user");
        let image = c.image();
        assert_eq!(image.scram_credential("alice", 2).unwrap().iterations, 8192);
        assert!(image.scram_credential("erin", 1).is_none());

        // Deleting one mechanism keeps the other; the log replays to the same credentials.
        let results = c
            .alter_user_scram_credentials(vec![("alice".into(), 1)], vec![])
            .unwrap();
        assert!(results[0].1.is_ok());
        drop(c);
        let c = open(dir.path(), &[]);
        let image = c.image();
        assert!(image.scram_credential("alice", 1).is_none());
        assert_eq!(
            image.scram_credential("alice", 2).unwrap().stored_key,
            vec![2]
        );
    }
}
