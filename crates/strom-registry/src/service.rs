//! The registry's operations, one method per REST action: reads answer from the state,
//! writes validate against it and append records to the store (on the primary only; the HTTP
//! layer forwards writes from the other instances).

use std::sync::{Arc, RwLock, RwLockReadGuard};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{RegistryError, Result};
use crate::model::{
    CompatibilityLevel, ConfigValue, DeleteSubjectValue, Mode, ModeValue, SchemaReference,
    SchemaType, SchemaValue, StoreRecord,
};
use crate::schemas::{self, NamedText};
use crate::state::{SchemaContent, State, Version};
use crate::store::Store;

/// The body of a register, lookup or compatibility request.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaRequest {
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(rename = "schemaType", default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Option<Vec<SchemaReference>>,
    /// Only in IMPORT mode.
    #[serde(default)]
    pub id: Option<i32>,
    #[serde(default)]
    pub version: Option<i32>,
}

/// A version selector from a URL: a number or `latest` (also `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    Latest,
    Number(i32),
}

impl VersionId {
    pub fn parse(s: &str) -> Result<VersionId> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(VersionId::Latest);
        }
        match s.parse::<i32>() {
            Ok(-1) => Ok(VersionId::Latest),
            Ok(n) if n >= 1 => Ok(VersionId::Number(n)),
            _ => Err(RegistryError::InvalidVersion(s.to_owned())),
        }
    }
}

pub struct Registry {
    state: Arc<RwLock<State>>,
    store: Store,
    /// Writes are serialized: ids and versions are handed out one at a time.
    write_lock: tokio::sync::Mutex<()>,
}

/// The JSON a version is served as.
pub fn version_json(subject: &str, v: &Version) -> Value {
    let mut out = json!({
        "subject": subject,
        "version": v.version,
        "id": v.id,
        "schema": v.content.schema,
    });
    add_type_and_refs(&mut out, &v.content);
    out
}

fn add_type_and_refs(out: &mut Value, c: &SchemaContent) {
    if c.schema_type != SchemaType::Avro {
        out["schemaType"] = json!(c.schema_type.name());
    }
    if !c.references.is_empty() {
        out["references"] = json!(c.references);
    }
}

/// Picks a version of a subject: `Latest` is the newest live one (or newest at all with
/// `deleted`).
fn pick<'s>(
    state: &'s State,
    subject: &str,
    version: VersionId,
    deleted: bool,
) -> Result<&'s Version> {
    let versions = state
        .versions(subject)
        .filter(|vs| deleted || vs.values().any(|v| !v.deleted))
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
    let found = match version {
        VersionId::Latest => versions.values().rev().find(|v| deleted || !v.deleted),
        VersionId::Number(n) => versions.get(&n).filter(|v| deleted || !v.deleted),
    };
    found.ok_or_else(|| {
        RegistryError::VersionNotFound(match version {
            VersionId::Latest => "latest".into(),
            VersionId::Number(n) => n.to_string(),
        })
    })
}

impl Registry {
    pub fn new(state: Arc<RwLock<State>>, store: Store) -> Registry {
        Registry {
            state,
            store,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    // ---- reads ----

    /// GET /schemas/ids/{id}: the schema in `format`; with `fetch_max_id`, also the largest
    /// id registered (`maxId`, as Confluent answers).
    pub fn schema_by_id(&self, id: i32, format: Option<&str>, fetch_max_id: bool) -> Result<Value> {
        let st = self.state();
        let c = st
            .schema_by_id(id)
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
        let mut out = json!({ "schema": formatted(&st, c, format)? });
        add_type_and_refs(&mut out, c);
        if fetch_max_id {
            out["maxId"] = json!(st.max_id());
        }
        Ok(out)
    }

    /// GET /schemas: every version of every subject (soft-deleted ones with `deleted`), or
    /// only each subject's latest with `latest_only`, by subject then version; `offset` and
    /// `limit` (negative: no limit) page the list.
    pub fn list_schemas(
        &self,
        prefix: &str,
        deleted: bool,
        latest_only: bool,
        offset: usize,
        limit: i64,
    ) -> Value {
        let st = self.state();
        let mut out = Vec::new();
        for subject in st.subjects(deleted).filter(|s| s.starts_with(prefix)) {
            let Some(versions) = st.versions(subject) else {
                continue;
            };
            let mut listed: Vec<&Version> = versions
                .values()
                .filter(|v| deleted || !v.deleted)
                .collect();
            if latest_only {
                listed = listed.into_iter().last().into_iter().collect();
            }
            out.extend(listed.into_iter().map(|v| version_json(subject, v)));
        }
        json!(page(out, offset, limit))
    }

    pub fn schema_text_by_id(&self, id: i32) -> Result<String> {
        let st = self.state();
        st.schema_by_id(id)
            .map(|c| c.schema.clone())
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    pub fn subjects_of_id(&self, id: i32, deleted: bool) -> Result<Value> {
        let st = self.state();
        st.schema_by_id(id)
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
        let mut subjects: Vec<&String> = st.usages(id, deleted).into_iter().map(|u| u.0).collect();
        subjects.dedup();
        Ok(json!(subjects))
    }

    pub fn versions_of_id(&self, id: i32, deleted: bool) -> Result<Value> {
        let st = self.state();
        st.schema_by_id(id)
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
        let out: Vec<Value> = st
            .usages(id, deleted)
            .into_iter()
            .map(|(s, v)| json!({"subject": s, "version": v}))
            .collect();
        Ok(json!(out))
    }

    pub fn subjects(
        &self,
        prefix: &str,
        deleted: bool,
        deleted_only: bool,
        offset: usize,
        limit: i64,
    ) -> Value {
        let st = self.state();
        let live: std::collections::BTreeSet<&String> = st.subjects(false).collect();
        let out: Vec<&String> = st
            .subjects(deleted || deleted_only)
            .filter(|s| s.starts_with(prefix))
            .filter(|s| !deleted_only || !live.contains(s))
            .collect();
        json!(page(out, offset, limit))
    }

    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Value> {
        let st = self.state();
        let out: Vec<i32> = st
            .versions(subject)
            .map(|vs| {
                vs.values()
                    .filter(|v| deleted || !v.deleted)
                    .map(|v| v.version)
                    .collect()
            })
            .unwrap_or_default();
        if out.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(json!(out))
    }

    pub fn version(
        &self,
        subject: &str,
        version: VersionId,
        deleted: bool,
        format: Option<&str>,
    ) -> Result<Value> {
        let st = self.state();
        let v = pick(&st, subject, version, deleted)?;
        let mut out = version_json(subject, v);
        out["schema"] = json!(formatted(&st, &v.content, format)?);
        Ok(out)
    }

    pub fn version_schema_text(&self, subject: &str, version: VersionId) -> Result<String> {
        let st = self.state();
        Ok(pick(&st, subject, version, false)?.content.schema.clone())
    }

    pub fn referenced_by(&self, subject: &str, version: VersionId) -> Result<Value> {
        let st = self.state();
        let v = pick(&st, subject, version, false)?;
        Ok(json!(st.referenced_by(subject, v.version)))
    }

    /// POST /subjects/{s}: is this schema registered under the subject?
    pub fn lookup(
        &self,
        subject: &str,
        req: &SchemaRequest,
        normalize: bool,
        deleted: bool,
    ) -> Result<Value> {
        let st = self.state();
        let versions = st
            .versions(subject)
            .filter(|vs| deleted || vs.values().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let (content, _) = self.prepare(&st, req, normalize)?;
        let found = versions
            .values()
            .rev()
            .filter(|v| deleted || !v.deleted)
            .find(|v| *v.content == content)
            .ok_or_else(|| RegistryError::SchemaNotFound(String::new()))?;
        Ok(version_json(subject, found))
    }

    pub fn config(&self, subject: Option<&str>, default_to_global: bool) -> Result<Value> {
        let st = self.state();
        let level = match subject {
            None => st.global_level().unwrap_or_default(),
            Some(s) => match st.subject_level(s) {
                Some(l) => l,
                None if default_to_global => st.global_level().unwrap_or_default(),
                None => return Err(RegistryError::SubjectCompatibilityNotConfigured(s.into())),
            },
        };
        Ok(json!({ "compatibilityLevel": level.name() }))
    }

    pub fn mode(&self, subject: Option<&str>, default_to_global: bool) -> Result<Value> {
        let st = self.state();
        let mode = match subject {
            None => st.global_mode().unwrap_or_default(),
            Some(s) => match st.subject_mode(s) {
                Some(m) => m,
                None if default_to_global => st.global_mode().unwrap_or_default(),
                None => return Err(RegistryError::SubjectModeNotConfigured(s.into())),
            },
        };
        Ok(json!({ "mode": mode.name() }))
    }

    /// Checks `req` against one version (`Some`) or against what the subject's level names
    /// (`None`). Returns the incompatibility messages.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionId>,
        req: &SchemaRequest,
        normalize: bool,
    ) -> Result<Vec<String>> {
        let st = self.state();
        let (content, parsed) = self.prepare(&st, req, normalize)?;
        let level = st.effective_level(subject);
        let against: Vec<&Version> = match version {
            Some(v) => vec![pick(&st, subject, v, false)?],
            None => {
                let (_, _, transitive) = level.rules();
                let live = st.live_versions(subject);
                if transitive {
                    live
                } else {
                    live.into_iter().last().into_iter().collect()
                }
            }
        };
        let _ = content;
        self.check_against(&st, &parsed, &against, level)
    }

    // ---- helpers shared by reads and writes ----

    /// Validates a request's schema and resolves its references: the content it would be
    /// stored as, and the parsed schema.
    fn prepare(
        &self,
        st: &State,
        req: &SchemaRequest,
        normalize: bool,
    ) -> Result<(SchemaContent, schemas::Parsed)> {
        let text = req
            .schema
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| RegistryError::InvalidSchema("Empty schema".into()))?;
        let schema_type = match &req.schema_type {
            Some(t) => SchemaType::parse(t)?,
            None => SchemaType::Avro,
        };
        let references = req.references.clone().unwrap_or_default();
        let ref_texts = resolve_references(st, &references)?;
        let parsed = schemas::parse(schema_type, text, &ref_texts)?;
        let content = SchemaContent {
            schema_type,
            schema: schemas::canonical_text(&parsed, text, normalize, &ref_texts)?,
            references,
        };
        Ok((content, parsed))
    }

    fn check_against(
        &self,
        st: &State,
        new: &schemas::Parsed,
        against: &[&Version],
        level: CompatibilityLevel,
    ) -> Result<Vec<String>> {
        let (backward, forward, _) = level.rules();
        let mut messages = Vec::new();
        for old in against {
            let old_refs = resolve_references(st, &old.content.references)?;
            let old_parsed =
                match schemas::parse(old.content.schema_type, &old.content.schema, &old_refs) {
                    Ok(p) => p,
                    Err(e) => {
                        messages.push(format!("version {} cannot be parsed: {e}", old.version));
                        continue;
                    }
                };
            if backward {
                for m in schemas::incompatibilities(&old_parsed, new) {
                    messages.push(format!("{m} (BACKWARD against version {})", old.version));
                }
            }
            if forward {
                for m in schemas::incompatibilities(new, &old_parsed) {
                    messages.push(format!("{m} (FORWARD against version {})", old.version));
                }
            }
        }
        Ok(messages)
    }
}

/// `items[offset..]`, at most `limit` of them (all when `limit` is negative), as Confluent
/// pages its lists.
fn page<T>(items: Vec<T>, offset: usize, limit: i64) -> Vec<T> {
    let rest = items.into_iter().skip(offset);
    match usize::try_from(limit) {
        Ok(n) => rest.take(n).collect(),
        Err(_) => rest.collect(),
    }
}

/// A schema's text in the `format` asked for. `serialized` gives a Protobuf schema as its
/// compiled, base64 `FileDescriptorProto` (what confluent-kafka's Protobuf serdes ask for);
/// other formats, and other schema types, get the stored text (as Confluent does for formats
/// a type does not define).
fn formatted(st: &State, c: &SchemaContent, format: Option<&str>) -> Result<String> {
    if c.schema_type != SchemaType::Protobuf || format != Some("serialized") {
        return Ok(c.schema.clone());
    }
    let refs = resolve_references(st, &c.references)?;
    match schemas::parse(c.schema_type, &c.schema, &refs)? {
        schemas::Parsed::Protobuf(p) => Ok(crate::protobuf::serialized(&p)),
        _ => unreachable!("a PROTOBUF schema parses as Protobuf"),
    }
}

/// The schemas `references` name, and theirs, dependencies first: (name, text).
fn resolve_references(st: &State, references: &[SchemaReference]) -> Result<Vec<NamedText>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    collect_references(st, references, &mut out, &mut seen, 0)?;
    Ok(out)
}

/// Bound on reference nesting, so a cycle or a pathological chain cannot recurse forever.
const MAX_REFERENCE_DEPTH: usize = 32;

fn collect_references(
    st: &State,
    references: &[SchemaReference],
    out: &mut Vec<NamedText>,
    seen: &mut std::collections::HashSet<(String, i32)>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_REFERENCE_DEPTH {
        return Err(RegistryError::InvalidSchema(format!(
            "references nest deeper than {MAX_REFERENCE_DEPTH}"
        )));
    }
    for r in references {
        let version = if r.version == -1 {
            VersionId::Latest
        } else {
            VersionId::Number(r.version)
        };
        let v = pick(st, &r.subject, version, false).map_err(|_| {
            RegistryError::InvalidSchema(format!(
                "reference '{}' to subject '{}' version {} not found",
                r.name, r.subject, r.version
            ))
        })?;
        if !seen.insert((r.subject.clone(), v.version)) {
            continue;
        }
        collect_references(st, &v.content.references, out, seen, depth + 1)?;
        out.push((r.name.clone(), v.content.schema.clone()));
    }
    Ok(())
}

// ---- writes (primary only) ----

impl Registry {
    /// The store, for the primary's read-to-end before a write.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn writable(st: &State, subject: Option<&str>) -> Result<Mode> {
        match st.effective_mode(subject) {
            Mode::Readonly => Err(RegistryError::OperationNotPermitted(match subject {
                Some(s) => format!("Subject {s} is in read-only mode"),
                None => "The registry is in read-only mode".into(),
            })),
            m => Ok(m),
        }
    }

    /// POST /subjects/{s}/versions: registers a schema (or returns the id it already has).
    pub async fn register(
        &self,
        subject: &str,
        req: SchemaRequest,
        normalize: bool,
    ) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        self.store.read_to_end().await?;
        let record = {
            let st = self.state();
            let mode = Self::writable(&st, Some(subject))?;
            let (content, parsed) = self.prepare(&st, &req, normalize)?;
            let live = st.live_versions(subject);
            if req.id.is_none() {
                if let Some(v) = live.iter().find(|v| *v.content == content) {
                    return Ok(json!({ "id": v.id }));
                }
            }
            if mode != Mode::Import && (req.id.is_some() || req.version.is_some()) {
                return Err(RegistryError::OperationNotPermitted(
                    "Overriding the schema id or version is only permitted in IMPORT mode".into(),
                ));
            }
            if mode != Mode::Import {
                let level = st.effective_level(subject);
                let (_, _, transitive) = level.rules();
                let against: Vec<&Version> = if transitive {
                    live.clone()
                } else {
                    live.last().copied().into_iter().collect()
                };
                let messages = self.check_against(&st, &parsed, &against, level)?;
                if !messages.is_empty() {
                    return Err(RegistryError::Incompatible {
                        subject: subject.to_owned(),
                        messages,
                    });
                }
            }
            let id = match req.id {
                Some(id) => {
                    if let Some(existing) = st.schema_by_id(id) {
                        if **existing != content {
                            return Err(RegistryError::OperationNotPermitted(format!(
                                "Overwrite new schema with id {id} is not permitted."
                            )));
                        }
                    }
                    id
                }
                None => st.id_of(&content).unwrap_or_else(|| st.next_id()),
            };
            let next_version = st
                .versions(subject)
                .and_then(|vs| vs.keys().last().copied())
                .unwrap_or(0)
                + 1;
            let version = req.version.unwrap_or(next_version);
            StoreRecord::Schema {
                subject: subject.to_owned(),
                version,
                value: Some(SchemaValue {
                    subject: subject.to_owned(),
                    version,
                    id,
                    schema_type: content.schema_type,
                    references: content.references,
                    schema: content.schema,
                    deleted: false,
                }),
            }
        };
        let id = match &record {
            StoreRecord::Schema { value: Some(v), .. } => v.id,
            _ => unreachable!("register builds a schema record"),
        };
        self.store.append(record).await?;
        Ok(json!({ "id": id }))
    }

    /// DELETE /subjects/{s}: soft, or (after a soft delete) permanent.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        self.store.read_to_end().await?;
        let (records, deleted) = {
            let st = self.state();
            Self::writable(&st, Some(subject))?;
            let versions = st
                .versions(subject)
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
            let live: Vec<&Version> = versions.values().filter(|v| !v.deleted).collect();
            if let Some(v) = live
                .iter()
                .find(|v| !st.referenced_by(subject, v.version).is_empty())
            {
                return Err(RegistryError::ReferenceExists {
                    subject: subject.to_owned(),
                    version: v.version,
                });
            }
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
                }
                let records: Vec<StoreRecord> = versions
                    .keys()
                    .map(|v| StoreRecord::Schema {
                        subject: subject.to_owned(),
                        version: *v,
                        value: None,
                    })
                    .collect();
                (records, versions.keys().copied().collect::<Vec<i32>>())
            } else {
                let Some(last) = live.last() else {
                    return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
                };
                let record = StoreRecord::DeleteSubject(DeleteSubjectValue {
                    subject: subject.to_owned(),
                    version: last.version,
                });
                (vec![record], live.iter().map(|v| v.version).collect())
            }
        };
        for r in records {
            self.store.append(r).await?;
        }
        Ok(json!(deleted))
    }

    /// DELETE /subjects/{s}/versions/{v}: soft, or (after a soft delete) permanent.
    pub async fn delete_version(
        &self,
        subject: &str,
        version: VersionId,
        permanent: bool,
    ) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        self.store.read_to_end().await?;
        let (record, number) = {
            let st = self.state();
            Self::writable(&st, Some(subject))?;
            // A number may name a soft-deleted version (to delete it for good, or to say it
            // already is); `latest` is the newest live one.
            let v = pick(
                &st,
                subject,
                version,
                matches!(version, VersionId::Number(_)),
            )?;
            if !st.referenced_by(subject, v.version).is_empty() {
                return Err(RegistryError::ReferenceExists {
                    subject: subject.to_owned(),
                    version: v.version,
                });
            }
            let record = match (permanent, v.deleted) {
                (false, true) => {
                    return Err(RegistryError::VersionSoftDeleted {
                        subject: subject.to_owned(),
                        version: v.version,
                    })
                }
                (true, false) => {
                    return Err(RegistryError::VersionNotSoftDeleted {
                        subject: subject.to_owned(),
                        version: v.version,
                    })
                }
                (true, true) => StoreRecord::Schema {
                    subject: subject.to_owned(),
                    version: v.version,
                    value: None,
                },
                (false, false) => StoreRecord::Schema {
                    subject: subject.to_owned(),
                    version: v.version,
                    value: Some(SchemaValue {
                        subject: subject.to_owned(),
                        version: v.version,
                        id: v.id,
                        schema_type: v.content.schema_type,
                        references: v.content.references.clone(),
                        schema: v.content.schema.clone(),
                        deleted: true,
                    }),
                },
            };
            (record, v.version)
        };
        self.store.append(record).await?;
        Ok(json!(number))
    }

    /// PUT /config[/{s}].
    pub async fn set_config(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        {
            let st = self.state();
            Self::writable(&st, subject)?;
        }
        self.store
            .append(StoreRecord::Config {
                subject: subject.map(str::to_owned),
                value: Some(ConfigValue {
                    compatibility_level: level,
                }),
            })
            .await?;
        Ok(json!({ "compatibility": level.name() }))
    }

    /// DELETE /config[/{s}]: back to the global level (or the default for the global one).
    pub async fn delete_config(&self, subject: Option<&str>) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        let previous = {
            let st = self.state();
            match subject {
                None => st.global_level().unwrap_or_default(),
                Some(s) => st.subject_level(s).ok_or_else(|| {
                    if st.versions(s).is_some() {
                        RegistryError::SubjectCompatibilityNotConfigured(s.into())
                    } else {
                        RegistryError::SubjectNotFound(s.into())
                    }
                })?,
            }
        };
        self.store
            .append(StoreRecord::Config {
                subject: subject.map(str::to_owned),
                value: None,
            })
            .await?;
        Ok(json!({ "compatibilityLevel": previous.name() }))
    }

    /// PUT /mode[/{s}]. Entering IMPORT needs an empty registry (or subject) unless `force`.
    pub async fn set_mode(&self, subject: Option<&str>, mode: Mode, force: bool) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        {
            let st = self.state();
            if mode == Mode::Import && !force {
                let has_schemas = match subject {
                    None => st.subjects(false).next().is_some(),
                    Some(s) => !st.live_versions(s).is_empty(),
                };
                if has_schemas {
                    return Err(RegistryError::OperationNotPermitted(
                        "Cannot import since found existing subjects".into(),
                    ));
                }
            }
        }
        self.store
            .append(StoreRecord::Mode {
                subject: subject.map(str::to_owned),
                value: Some(ModeValue { mode }),
            })
            .await?;
        Ok(json!({ "mode": mode.name() }))
    }

    /// DELETE /mode/{s}.
    pub async fn delete_mode(&self, subject: &str) -> Result<Value> {
        let _w = self.write_lock.lock().await;
        let previous = {
            let st = self.state();
            st.subject_mode(subject)
                .ok_or_else(|| RegistryError::SubjectModeNotConfigured(subject.into()))?
        };
        self.store
            .append(StoreRecord::Mode {
                subject: Some(subject.to_owned()),
                value: None,
            })
            .await?;
        Ok(json!({ "mode": previous.name() }))
    }
}
