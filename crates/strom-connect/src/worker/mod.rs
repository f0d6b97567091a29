//! The worker: the connectors it runs, their target states (started, paused, stopped as in
//! KIP-875) and statuses, and their tasks (one tokio task each, see `runner`). Every REST
//! operation is a method here; the standalone mode keeps source offsets in a local file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as J};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{get_parsed, with_prefix, Props};
use crate::connector::{Connector, Task};
use crate::converter::{converter_for, Converter, JSON_CONVERTER};
use crate::data::JsonMap;
use crate::error::{ConnectError, Result};
use crate::offsets::{FileOffsetStore, OffsetStore};
use crate::plugins::{ConnectorPlugin, Plugins};
use crate::runner::{run_sink, run_source, TaskContext};

pub(crate) mod offsets_api;

/// How long a stopping task may take before it is aborted (Kafka's
/// `task.shutdown.graceful.timeout.ms` default).
const TASK_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A worker's settings (Kafka Connect's worker properties).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Every worker property as given (for `producer.*`, `consumer.*`, converters).
    pub props: Props,
    pub bootstrap_servers: String,
    /// The REST listener, `http://host:port` (`listeners`, default `http://0.0.0.0:8083`).
    pub listener: String,
    /// `offset.storage.file.filename` (standalone).
    pub offset_file: Option<PathBuf>,
    /// `offset.flush.interval.ms`: how often tasks commit offsets (default 60 s).
    pub offset_flush_interval: Duration,
}

impl WorkerConfig {
    pub fn from_props(props: Props) -> Result<WorkerConfig> {
        let bootstrap_servers = props
            .get("bootstrap.servers")
            .cloned()
            .unwrap_or_else(|| "localhost:9092".into());
        let listener = props
            .get("listeners")
            .map(|l| l.split(',').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "http://0.0.0.0:8083".into());
        if !listener.starts_with("http://") {
            return Err(ConnectError::WorkerConfig(format!(
                "Invalid value {listener} for configuration listeners: only http:// listeners are supported"
            )));
        }
        let flush_ms: u64 = get_parsed(&props, "offset.flush.interval.ms", 60_000)
            .map_err(|e| ConnectError::WorkerConfig(e.to_string()))?;
        if let Some(class) = props.get("header.converter") {
            crate::converter::check_header_converter(class)
                .map_err(|e| ConnectError::WorkerConfig(e.to_string()))?;
        }
        for which in ["key.converter", "value.converter"] {
            if let Some(class) = props.get(which) {
                converter_for(class, &with_prefix(&props, &format!("{which}.")))
                    .map_err(|e| ConnectError::WorkerConfig(e.to_string()))?;
            }
        }
        Ok(WorkerConfig {
            bootstrap_servers,
            listener,
            offset_file: props.get("offset.storage.file.filename").map(PathBuf::from),
            offset_flush_interval: Duration::from_millis(flush_ms),
            props,
        })
    }

    /// `host:port` of the listener (the `listeners` address).
    pub fn listen_addr(&self) -> &str {
        self.listener
            .trim_start_matches("http://")
            .trim_end_matches('/')
    }

    /// The converter `which` (`key.converter` / `value.converter`) of a connector: its own
    /// setting if it has one (with its own `which.*` configs), else the worker's.
    pub fn converter(
        &self,
        connector: &Props,
        which: &str,
    ) -> Result<(String, Box<dyn Converter>)> {
        let prefix = format!("{which}.");
        let (class, own) = match connector.get(which).filter(|c| !c.trim().is_empty()) {
            Some(c) => (c.clone(), with_prefix(connector, &prefix)),
            None => (
                self.props
                    .get(which)
                    .cloned()
                    .unwrap_or_else(|| JSON_CONVERTER.into()),
                with_prefix(&self.props, &prefix),
            ),
        };
        let conv = crate::converter::converter_for_role(&class, &own, which == "key.converter")?;
        Ok((class, conv))
    }
}

/// What the user asked a connector to be (KIP-875's target states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

impl TargetState {
    /// KIP-980's `initial_state` names.
    pub fn parse_initial(s: &str) -> Option<TargetState> {
        match s {
            "RUNNING" => Some(TargetState::Started),
            "PAUSED" => Some(TargetState::Paused),
            "STOPPED" => Some(TargetState::Stopped),
            _ => None,
        }
    }
}

/// A connector's or task's state in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Stopped => "STOPPED",
            State::Failed => "FAILED",
            State::Restarting => "RESTARTING",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    /// Why it failed (Kafka gives a stack trace here).
    pub trace: Option<String>,
}

struct TaskRun {
    status: Arc<Mutex<Status>>,
    target: watch::Sender<TargetState>,
    join: JoinHandle<()>,
}

struct Entry {
    config: Props,
    plugin: ConnectorPlugin,
    connector: Option<Box<dyn Connector>>,
    target: TargetState,
    status: Status,
    task_configs: Vec<Props>,
    tasks: Vec<TaskRun>,
    topics: Arc<Mutex<BTreeSet<String>>>,
}

/// A Connect worker.
pub struct Worker {
    config: Arc<WorkerConfig>,
    plugins: Arc<Plugins>,
    worker_id: String,
    offsets: Arc<dyn OffsetStore>,
    connectors: tokio::sync::Mutex<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

fn lock_status(s: &Mutex<Status>) -> Status {
    s.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn status_json(s: &Status, worker_id: &str) -> JsonMap {
    let mut m = JsonMap::new();
    m.insert("state".into(), json!(s.state.name()));
    if let Some(t) = &s.trace {
        m.insert("trace".into(), json!(t));
    }
    m.insert("worker_id".into(), json!(worker_id));
    m
}

/// Kafka's checks of the connector name in the URL against the config's `name` (which is
/// set from the URL when missing).
pub(crate) fn check_connector_name(name: &str, config: &mut Props) -> Result<()> {
    if name.trim().is_empty() {
        return Err(ConnectError::BadRequest(
            "Connector name cannot be empty".into(),
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ConnectError::BadRequest(format!(
            "Connector name {name} contains ISO control characters"
        )));
    }
    match config.get("name") {
        Some(n) if n != name => Err(ConnectError::BadRequest(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        ))),
        Some(_) => Ok(()),
        None => {
            config.insert("name".into(), name.to_owned());
            Ok(())
        }
    }
}

impl Worker {
    /// A worker with the built-in plugins; `worker_id` is the `host:port` its REST API is
    /// reached at.
    pub fn new(config: WorkerConfig, worker_id: String) -> Result<Arc<Worker>> {
        Worker::with_plugins(config, worker_id, Plugins::builtin())
    }

    /// A worker with the given connector plugins.
    pub fn with_plugins(
        config: WorkerConfig,
        worker_id: String,
        plugins: Plugins,
    ) -> Result<Arc<Worker>> {
        let path = config.offset_file.clone().ok_or_else(|| {
            ConnectError::WorkerConfig(
                "Missing required configuration \"offset.storage.file.filename\" which has no default value."
                    .into(),
            )
        })?;
        Ok(Arc::new(Worker {
            offsets: Arc::new(FileOffsetStore::open(path)?),
            config: Arc::new(config),
            plugins: Arc::new(plugins),
            worker_id,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
        }))
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub async fn names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// Validates `config` for connector `name` (Kafka's checks, in its order).
    fn check_config(&self, name: &str, config: &mut Props) -> Result<()> {
        check_connector_name(name, config)?;
        let v = self.plugins.validate_connector_config(config)?;
        let errors = v.errors();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(crate::config::invalid_config_error(&errors))
        }
    }

    /// Creates a connector, or with `allow_update` replaces its config. Returns whether it
    /// was created and its info.
    pub async fn put_connector(
        &self,
        name: &str,
        mut config: Props,
        initial: TargetState,
        allow_update: bool,
    ) -> Result<(bool, J)> {
        self.check_config(name, &mut config)?;
        let (plugin, _) = self.plugins.connector_for(&config)?;
        let mut map = self.connectors.lock().await;
        let created = match map.get_mut(name) {
            Some(_) if !allow_update => return Err(ConnectError::ConnectorExists(name.to_owned())),
            Some(e) => {
                Self::stop_everything(e).await;
                e.config = config;
                e.plugin = plugin;
                false
            }
            None => {
                map.insert(
                    name.to_owned(),
                    Entry {
                        config,
                        plugin,
                        connector: None,
                        target: initial,
                        status: Status {
                            state: State::Unassigned,
                            trace: None,
                        },
                        task_configs: Vec::new(),
                        tasks: Vec::new(),
                        topics: Arc::new(Mutex::new(BTreeSet::new())),
                    },
                );
                true
            }
        };
        let e = map
            .get_mut(name)
            .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
        self.start_connector(name, e);
        Ok((created, Self::info_json(name, e)))
    }

    /// Starts the connector instance and its tasks; a stopped connector runs neither.
    fn start_connector(&self, name: &str, e: &mut Entry) {
        if e.target == TargetState::Stopped {
            e.task_configs.clear();
            e.status = Status {
                state: State::Stopped,
                trace: None,
            };
            return;
        }
        let mut connector = (e.plugin.make)();
        if let Err(err) = connector.start(&e.config) {
            e.status = Status {
                state: State::Failed,
                trace: Some(err.to_string()),
            };
            return;
        }
        let max_tasks: usize = get_parsed(&e.config, "tasks.max", 1usize)
            .unwrap_or(1)
            .max(1);
        e.task_configs = match e.target {
            TargetState::Stopped => Vec::new(),
            _ => connector.task_configs(max_tasks),
        };
        e.connector = Some(connector);
        e.status = Status {
            state: Self::state_of(e.target),
            trace: None,
        };
        for id in 0..e.task_configs.len() {
            let run = self.spawn_task(name, id, e);
            e.tasks.push(run);
        }
    }

    fn state_of(t: TargetState) -> State {
        match t {
            TargetState::Started => State::Running,
            TargetState::Paused => State::Paused,
            TargetState::Stopped => State::Stopped,
        }
    }

    fn spawn_task(&self, name: &str, id: usize, e: &Entry) -> TaskRun {
        let status = Arc::new(Mutex::new(Status {
            state: State::Unassigned,
            trace: None,
        }));
        let (target, rx) = watch::channel(e.target);
        let ctx = TaskContext {
            connector: name.to_owned(),
            id,
            connector_config: e.config.clone(),
            task_config: e.task_configs[id].clone(),
            worker: self.config.clone(),
            offsets: self.offsets.clone(),
            status: status.clone(),
            topics: e.topics.clone(),
            target: rx,
        };
        let task = match &e.connector {
            Some(c) => c.create_task(),
            None => (e.plugin.make)().create_task(),
        };
        let join = match task {
            Task::Source(t) => tokio::spawn(run_source(ctx, t)),
            Task::Sink(t) => tokio::spawn(run_sink(ctx, t)),
        };
        TaskRun {
            status,
            target,
            join,
        }
    }

    async fn stop_task(run: &mut TaskRun) {
        let _ = run.target.send(TargetState::Stopped);
        if tokio::time::timeout(TASK_SHUTDOWN_TIMEOUT, &mut run.join)
            .await
            .is_err()
        {
            tracing::warn!("task did not stop within {TASK_SHUTDOWN_TIMEOUT:?}; aborting it");
            run.join.abort();
        }
    }

    /// Stops every task and the connector instance.
    async fn stop_everything(e: &mut Entry) {
        for mut run in e.tasks.drain(..) {
            Self::stop_task(&mut run).await;
        }
        if let Some(mut c) = e.connector.take() {
            c.stop();
        }
    }

    fn info_json(name: &str, e: &Entry) -> J {
        let tasks: Vec<J> = (0..e.task_configs.len())
            .map(|i| json!({"connector": name, "task": i}))
            .collect();
        json!({
            "name": name,
            "config": e.config,
            "tasks": tasks,
            "type": e.plugin.connector_type.name(),
        })
    }

    fn status_of(&self, name: &str, e: &Entry) -> J {
        let tasks: Vec<J> = e
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut m = status_json(&lock_status(&t.status), &self.worker_id);
                m.insert("id".into(), json!(i));
                J::Object(m)
            })
            .collect();
        json!({
            "name": name,
            "connector": status_json(&e.status, &self.worker_id),
            "tasks": tasks,
            "type": e.plugin.connector_type.name(),
        })
    }

    async fn with_entry<T>(&self, name: &str, f: impl FnOnce(&Entry) -> T) -> Result<T> {
        let map = self.connectors.lock().await;
        map.get(name)
            .map(f)
            .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))
    }

    pub async fn info(&self, name: &str) -> Result<J> {
        self.with_entry(name, |e| Self::info_json(name, e)).await
    }

    pub async fn connector_config(&self, name: &str) -> Result<Props> {
        self.with_entry(name, |e| e.config.clone()).await
    }

    pub async fn status(&self, name: &str) -> Result<J> {
        self.with_entry(name, |e| self.status_of(name, e)).await
    }

    /// A task's status; Kafka answers "No status found" for an unknown connector too.
    pub async fn task_status(&self, name: &str, task: i32) -> Result<J> {
        let map = self.connectors.lock().await;
        let status = map
            .get(name)
            .and_then(|e| usize::try_from(task).ok().and_then(|i| e.tasks.get(i)))
            .map(|t| lock_status(&t.status));
        let status = status.ok_or_else(|| ConnectError::TaskStatusNotFound {
            connector: name.to_owned(),
            task,
        })?;
        let mut m = status_json(&status, &self.worker_id);
        m.insert("id".into(), json!(task));
        Ok(J::Object(m))
    }

    pub async fn task_configs(&self, name: &str) -> Result<J> {
        self.with_entry(name, |e| {
            J::Array(
                e.task_configs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| json!({"id": {"connector": name, "task": i}, "config": c}))
                    .collect(),
            )
        })
        .await
    }

    pub async fn topics(&self, name: &str) -> Result<J> {
        self.with_entry(name, |e| {
            let topics: Vec<String> = e
                .topics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            json!({ name: { "topics": topics } })
        })
        .await
    }

    pub async fn reset_topics(&self, name: &str) -> Result<()> {
        self.with_entry(name, |e| {
            e.topics.lock().unwrap_or_else(|p| p.into_inner()).clear()
        })
        .await
    }

    /// Kafka's `GET /connectors?expand=...` entry for one connector.
    pub async fn expanded(&self, status: bool, info: bool) -> J {
        let map = self.connectors.lock().await;
        let mut out = JsonMap::new();
        for (name, e) in map.iter() {
            let mut m = JsonMap::new();
            if status {
                m.insert("status".into(), self.status_of(name, e));
            }
            if info {
                m.insert("info".into(), Self::info_json(name, e));
            }
            out.insert(name.clone(), J::Object(m));
        }
        J::Object(out)
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let mut map = self.connectors.lock().await;
        let mut e = map
            .remove(name)
            .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
        Self::stop_everything(&mut e).await;
        Ok(())
    }

    /// Changes the target state (pause, resume, stop).
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<()> {
        let mut map = self.connectors.lock().await;
        let e = map
            .get_mut(name)
            .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
        let was = e.target;
        e.target = target;
        match (was, target) {
            (a, b) if a == b => {}
            (_, TargetState::Stopped) => {
                Self::stop_everything(e).await;
                e.task_configs.clear();
                e.status = Status {
                    state: State::Stopped,
                    trace: None,
                };
            }
            (TargetState::Stopped, _) => self.start_connector(name, e),
            _ => {
                for t in &e.tasks {
                    let _ = t.target.send(target);
                }
                if e.status.state != State::Failed {
                    e.status.state = Self::state_of(target);
                }
            }
        }
        Ok(())
    }

    /// Restarts the connector and, with `include_tasks`, its tasks (with `only_failed`, only
    /// the failed ones). Returns the status (states RESTARTING where restarted) when tasks
    /// were included or `only_failed` was given, as Kafka's 202 answer does.
    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<J>> {
        let mut map = self.connectors.lock().await;
        let e = map
            .get_mut(name)
            .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
        if e.target == TargetState::Stopped {
            // Nothing runs, so nothing restarts (the status says STOPPED).
            let status = self.status_of(name, e);
            return Ok((include_tasks || only_failed).then_some(status));
        }
        let connector_failed = e.status.state == State::Failed;
        let restart_connector = !only_failed || connector_failed;
        let failed_tasks: Vec<bool> = e
            .tasks
            .iter()
            .map(|t| lock_status(&t.status).state == State::Failed)
            .collect();
        let restart_task = |i: usize| include_tasks && (!only_failed || failed_tasks[i]);
        let mut before = self.status_of(name, e);
        if restart_connector {
            before["connector"]["state"] = json!(State::Restarting.name());
        }
        for i in 0..failed_tasks.len() {
            if restart_task(i) {
                before["tasks"][i]["state"] = json!(State::Restarting.name());
            }
        }
        let answer = (include_tasks || only_failed).then_some(before);
        if restart_connector {
            // A new connector instance; if its task configs differ, every task restarts.
            let old_configs = e.task_configs.clone();
            if let Some(mut c) = e.connector.take() {
                c.stop();
            }
            let mut connector = (e.plugin.make)();
            match connector.start(&e.config) {
                Err(err) => {
                    e.status = Status {
                        state: State::Failed,
                        trace: Some(err.to_string()),
                    };
                }
                Ok(()) => {
                    e.status = Status {
                        state: Self::state_of(e.target),
                        trace: None,
                    };
                    let max_tasks: usize = get_parsed(&e.config, "tasks.max", 1usize)
                        .unwrap_or(1)
                        .max(1);
                    e.task_configs = connector.task_configs(max_tasks);
                    e.connector = Some(connector);
                }
            }
            if e.task_configs != old_configs {
                for mut run in e.tasks.drain(..) {
                    Self::stop_task(&mut run).await;
                }
                for id in 0..e.task_configs.len() {
                    let run = self.spawn_task(name, id, e);
                    e.tasks.push(run);
                }
                return Ok(answer);
            }
        }
        for i in 0..failed_tasks.len() {
            if restart_task(i) {
                self.restart_task_locked(name, i, e).await;
            }
        }
        Ok(answer)
    }

    /// Stops task `i` and starts a new instance of it (the connector's lock is held).
    async fn restart_task_locked(&self, name: &str, i: usize, e: &mut Entry) {
        Self::stop_task(&mut e.tasks[i]).await;
        e.tasks[i] = self.spawn_task(name, i, e);
    }

    pub async fn restart_task(&self, name: &str, task: i32) -> Result<()> {
        let mut map = self.connectors.lock().await;
        let e = map
            .get_mut(name)
            .ok_or_else(|| ConnectError::ConnectorNotFound(name.to_owned()))?;
        let i = usize::try_from(task)
            .ok()
            .filter(|i| *i < e.tasks.len())
            .ok_or_else(|| ConnectError::UnknownTask {
                connector: name.to_owned(),
                task,
            })?;
        self.restart_task_locked(name, i, e).await;
        Ok(())
    }

    /// Stops every connector (worker shutdown); tasks commit their offsets.
    pub async fn shutdown(&self) {
        let mut map = self.connectors.lock().await;
        for e in map.values_mut() {
            Self::stop_everything(e).await;
        }
        map.clear();
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
    fn worker_properties_with_kafkas_names_and_defaults() {
        let c = WorkerConfig::from_props(props(&[("plugin.path", "/opt/connectors")])).unwrap();
        assert_eq!(c.bootstrap_servers, "localhost:9092");
        assert_eq!(c.listener, "http://0.0.0.0:8083");
        assert_eq!(c.listen_addr(), "0.0.0.0:8083");
        assert_eq!(c.offset_flush_interval, Duration::from_secs(60));
        let (class, _) = c.converter(&Props::new(), "value.converter").unwrap();
        assert_eq!(class, JSON_CONVERTER);

        let c = WorkerConfig::from_props(props(&[
            ("listeners", "http://127.0.0.1:18083,http://other:1"),
            ("offset.flush.interval.ms", "250"),
            ("value.converter", "StringConverter"),
        ]))
        .unwrap();
        assert_eq!(c.listen_addr(), "127.0.0.1:18083");
        assert_eq!(c.offset_flush_interval, Duration::from_millis(250));
        // A connector's own converter wins over the worker's.
        let own = props(&[("value.converter", "ByteArrayConverter")]);
        assert_eq!(
            c.converter(&own, "value.converter").unwrap().0,
            "ByteArrayConverter"
        );

        for (bad, why) in [
            (("listeners", "https://h:1"), "only http:// listeners"),
            (
                ("offset.flush.interval.ms", "soon"),
                "offset.flush.interval.ms",
            ),
            (("key.converter", "com.example.Nope"), "could not be found"),
            (("header.converter", "JsonConverter"), "header.converter"),
        ] {
            let e = WorkerConfig::from_props(props(&[bad])).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}
