//! The registry's state: an image built by replaying `_schemas` records in order (subjects
//! and their versions, schemas by global id, compatibility and mode settings). Pure: no I/O;
//! the store feeds it records and the API reads it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    CompatibilityLevel, ConfigValue, DeleteSubjectValue, Mode, ModeValue, SchemaReference,
    SchemaType, SchemaValue, StoreRecord,
};

/// A schema as registered under one id: its text, type and references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaContent {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// One version of a subject.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: i32,
    pub id: i32,
    pub content: Arc<SchemaContent>,
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub struct State {
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    by_id: HashMap<i32, Arc<SchemaContent>>,
    /// Identity of a schema (type, canonical text, references) → its id, so the same schema
    /// gets the same id in every subject.
    id_by_content: HashMap<SchemaContent, i32>,
    /// Schemas no longer served by id (every version using them permanently deleted), kept
    /// so that an import reusing the id for other content drops the old identity.
    retired: HashMap<i32, Arc<SchemaContent>>,
    max_id: i32,
    global_level: Option<CompatibilityLevel>,
    subject_levels: BTreeMap<String, CompatibilityLevel>,
    global_mode: Option<Mode>,
    subject_modes: BTreeMap<String, Mode>,
}

impl State {
    /// Applies one committed record.
    pub fn apply(&mut self, record: StoreRecord) {
        match record {
            StoreRecord::Schema {
                subject,
                version,
                value: Some(v),
            } => self.put_version(subject, version, v),
            StoreRecord::Schema {
                subject,
                version,
                value: None,
            } => {
                let Some(versions) = self.subjects.get_mut(&subject) else {
                    return;
                };
                let removed = versions.remove(&version);
                if versions.is_empty() {
                    self.subjects.remove(&subject);
                }
                // A schema whose every subject-version is permanently deleted is no longer
                // served by id (40403, as Confluent answers). Its id stays taken: it is never
                // handed to another schema, and the same schema registered again gets it back.
                if let Some(removed) = removed {
                    let still_used = self
                        .subjects
                        .values()
                        .flat_map(|vs| vs.values())
                        .any(|v| v.id == removed.id);
                    if !still_used {
                        if let Some(c) = self.by_id.remove(&removed.id) {
                            self.retired.insert(removed.id, c);
                        }
                    }
                }
            }
            StoreRecord::Config {
                subject,
                value:
                    Some(ConfigValue {
                        compatibility_level,
                    }),
            } => match subject {
                None => self.global_level = Some(compatibility_level),
                Some(s) => {
                    self.subject_levels.insert(s, compatibility_level);
                }
            },
            StoreRecord::Config {
                subject,
                value: None,
            } => match subject {
                None => self.global_level = None,
                Some(s) => {
                    self.subject_levels.remove(&s);
                }
            },
            StoreRecord::Mode {
                subject,
                value: Some(ModeValue { mode }),
            } => match subject {
                None => self.global_mode = Some(mode),
                Some(s) => {
                    self.subject_modes.insert(s, mode);
                }
            },
            StoreRecord::Mode {
                subject,
                value: None,
            } => match subject {
                None => self.global_mode = None,
                Some(s) => {
                    self.subject_modes.remove(&s);
                }
            },
            StoreRecord::DeleteSubject(DeleteSubjectValue { subject, version }) => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for v in versions.values_mut().filter(|v| v.version <= version) {
                        v.deleted = true;
                    }
                }
            }
            StoreRecord::Noop | StoreRecord::Ignored => {}
        }
    }

    fn put_version(&mut self, subject: String, version: i32, v: SchemaValue) {
        let content = SchemaContent {
            schema_type: v.schema_type,
            schema: v.schema,
            references: v.references,
        };
        let content = match self.by_id.get(&v.id) {
            Some(c) if **c == content => c.clone(),
            _ => {
                if let Some(old) = self.retired.remove(&v.id) {
                    if *old != content && self.id_by_content.get(&*old) == Some(&v.id) {
                        self.id_by_content.remove(&*old);
                    }
                }
                let c = Arc::new(content.clone());
                self.by_id.insert(v.id, c.clone());
                self.id_by_content.entry(content).or_insert(v.id);
                c
            }
        };
        self.max_id = self.max_id.max(v.id);
        self.subjects.entry(subject).or_default().insert(
            version,
            Version {
                version,
                id: v.id,
                content,
                deleted: v.deleted,
            },
        );
    }

    pub fn schema_by_id(&self, id: i32) -> Option<&Arc<SchemaContent>> {
        self.by_id.get(&id)
    }

    pub fn id_of(&self, content: &SchemaContent) -> Option<i32> {
        self.id_by_content.get(content).copied()
    }

    /// The next id to hand out: ids only grow, so none is ever reused.
    pub fn next_id(&self) -> i32 {
        self.max_id + 1
    }

    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    /// Subject names; `deleted` includes subjects whose versions are all soft deleted.
    pub fn subjects(&self, deleted: bool) -> impl Iterator<Item = &String> {
        self.subjects
            .iter()
            .filter(move |(_, vs)| deleted || vs.values().any(|v| !v.deleted))
            .map(|(s, _)| s)
    }

    /// All versions of a subject (soft deleted ones included), oldest first.
    pub fn versions(&self, subject: &str) -> Option<&BTreeMap<i32, Version>> {
        self.subjects.get(subject)
    }

    /// Live (not soft deleted) versions, oldest first.
    pub fn live_versions(&self, subject: &str) -> Vec<&Version> {
        self.subjects
            .get(subject)
            .map(|vs| vs.values().filter(|v| !v.deleted).collect())
            .unwrap_or_default()
    }

    /// Subjects and versions that use schema `id`.
    pub fn usages(&self, id: i32, deleted: bool) -> Vec<(&String, i32)> {
        self.subjects
            .iter()
            .flat_map(|(s, vs)| vs.values().map(move |v| (s, v)))
            .filter(|(_, v)| v.id == id && (deleted || !v.deleted))
            .map(|(s, v)| (s, v.version))
            .collect()
    }

    /// Ids of live schemas whose references name `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .subjects
            .values()
            .flat_map(|vs| vs.values())
            .filter(|v| !v.deleted)
            .filter(|v| {
                v.content
                    .references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|v| v.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn global_level(&self) -> Option<CompatibilityLevel> {
        self.global_level
    }

    pub fn subject_level(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_levels.get(subject).copied()
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    pub fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        self.subject_level(subject)
            .or(self.global_level)
            .unwrap_or_default()
    }

    pub fn global_mode(&self) -> Option<Mode> {
        self.global_mode
    }

    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.subject_modes.get(subject).copied()
    }

    pub fn effective_mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.subject_mode(s))
            .or(self.global_mode)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(subject: &str, version: i32, id: i32, text: &str) -> StoreRecord {
        StoreRecord::Schema {
            subject: subject.into(),
            version,
            value: Some(SchemaValue {
                subject: subject.into(),
                version,
                id,
                schema_type: SchemaType::Avro,
                references: vec![],
                schema: text.into(),
                deleted: false,
            }),
        }
    }

    #[test]
    fn replay_builds_subjects_ids_and_deletes() {
        let mut s = State::default();
        s.apply(schema("a", 1, 1, "\"string\""));
        s.apply(schema("b", 1, 1, "\"string\""));
        s.apply(schema("a", 2, 2, "\"long\""));
        assert_eq!(s.next_id(), 3);
        assert_eq!(s.usages(1, false).len(), 2);
        s.apply(StoreRecord::DeleteSubject(DeleteSubjectValue {
            subject: "a".into(),
            version: 2,
        }));
        assert_eq!(s.subjects(false).collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(s.subjects(true).count(), 2);
        s.apply(StoreRecord::Schema {
            subject: "a".into(),
            version: 1,
            value: None,
        });
        s.apply(StoreRecord::Schema {
            subject: "a".into(),
            version: 2,
            value: None,
        });
        assert!(s.versions("a").is_none());
        // Id 2 was used by a/2 only: gone. Id 1 is still used by b/1.
        assert!(s.schema_by_id(2).is_none());
        assert!(s.schema_by_id(1).is_some());
        // The id is never handed to another schema; the same schema gets it back.
        assert_eq!(s.next_id(), 3);
        let long = SchemaContent {
            schema_type: SchemaType::Avro,
            schema: "\"long\"".into(),
            references: vec![],
        };
        assert_eq!(s.id_of(&long), Some(2));
        s.apply(schema("c", 1, 2, "\"long\""));
        assert_eq!(
            s.schema_by_id(2).map(|c| c.schema.as_str()),
            Some("\"long\"")
        );
        // Hard deleting b/1 forgets id 1 too.
        s.apply(StoreRecord::Schema {
            subject: "b".into(),
            version: 1,
            value: None,
        });
        assert!(s.schema_by_id(1).is_none());
    }
}
