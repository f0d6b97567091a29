//! `strom schema`: register, get, list, delete, check and configure schemas through a
//! Schema Registry's REST API (Strom's or Confluent's). Prints the registry's JSON answers.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use serde_json::{json, Value};
use strom_registry::http_client::{request, Method};

#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {
    /// The registry's URL.
    #[arg(
        long,
        short = 'r',
        global = true,
        default_value = "http://127.0.0.1:8081"
    )]
    registry: String,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Register a schema file under a subject; prints its id.
    Register {
        subject: String,
        /// The schema file (Avro JSON, JSON Schema or `.proto`).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// AVRO (default), JSON or PROTOBUF.
        #[arg(long = "type")]
        schema_type: Option<String>,
        #[arg(long)]
        normalize: bool,
    },
    /// Show a subject's version (latest by default) or a schema by id.
    Get {
        subject: Option<String>,
        #[arg(long, default_value = "latest")]
        version: String,
        /// A schema id instead of a subject.
        #[arg(long, conflicts_with = "subject")]
        id: Option<i32>,
    },
    /// List subjects, or the versions of one subject.
    List {
        subject: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        /// Include soft-deleted subjects or versions.
        #[arg(long)]
        deleted: bool,
    },
    /// Delete a subject or one of its versions (soft, or --permanent after a soft delete).
    Delete {
        subject: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
    /// Check a schema file against a subject (its level's versions, or one --version).
    Check {
        subject: String,
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long = "type")]
        schema_type: Option<String>,
        #[arg(long)]
        version: Option<String>,
    },
    /// Show or change the compatibility level (global, or of a subject).
    Config {
        subject: Option<String>,
        /// NONE, BACKWARD, FORWARD, FULL or a _TRANSITIVE form.
        #[arg(long)]
        set: Option<String>,
        /// Remove the subject's (or reset the global) level.
        #[arg(long, conflicts_with = "set")]
        delete: bool,
    },
}

/// Path segment encoding for subject names (they may hold '/', spaces, ...).
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn schema_body(file: &PathBuf, schema_type: &Option<String>) -> Result<Bytes> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut body = json!({ "schema": text });
    if let Some(t) = schema_type {
        body["schemaType"] = json!(t.to_ascii_uppercase());
    }
    Ok(Bytes::from(body.to_string()))
}

pub(crate) fn run(args: SchemaArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(execute(args))
}

async fn execute(args: SchemaArgs) -> Result<()> {
    let (method, path, body) = match &args.command {
        SchemaCommand::Register {
            subject,
            file,
            schema_type,
            normalize,
        } => (
            Method::POST,
            format!("/subjects/{}/versions?normalize={normalize}", seg(subject)),
            Some(schema_body(file, schema_type)?),
        ),
        SchemaCommand::Get { id: Some(id), .. } => {
            (Method::GET, format!("/schemas/ids/{id}"), None)
        }
        SchemaCommand::Get {
            subject: Some(s),
            version,
            ..
        } => (
            Method::GET,
            format!("/subjects/{}/versions/{}", seg(s), seg(version)),
            None,
        ),
        SchemaCommand::Get { .. } => bail!("give a subject or --id"),
        SchemaCommand::List {
            subject: Some(s),
            deleted,
            ..
        } => (
            Method::GET,
            format!("/subjects/{}/versions?deleted={deleted}", seg(s)),
            None,
        ),
        SchemaCommand::List {
            subject: None,
            prefix,
            deleted,
        } => (
            Method::GET,
            format!(
                "/subjects?deleted={deleted}&subjectPrefix={}",
                seg(prefix.as_deref().unwrap_or(""))
            ),
            None,
        ),
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let path = match version {
                Some(v) => format!("/subjects/{}/versions/{}", seg(subject), seg(v)),
                None => format!("/subjects/{}", seg(subject)),
            };
            (
                Method::DELETE,
                format!("{path}?permanent={permanent}"),
                None,
            )
        }
        SchemaCommand::Check {
            subject,
            file,
            schema_type,
            version,
        } => {
            let path = match version {
                Some(v) => format!(
                    "/compatibility/subjects/{}/versions/{}",
                    seg(subject),
                    seg(v)
                ),
                None => format!("/compatibility/subjects/{}/versions", seg(subject)),
            };
            (
                Method::POST,
                format!("{path}?verbose=true"),
                Some(schema_body(file, schema_type)?),
            )
        }
        SchemaCommand::Config {
            subject,
            set,
            delete,
        } => {
            let path = match subject {
                Some(s) => format!("/config/{}?defaultToGlobal=true", seg(s)),
                None => "/config".to_owned(),
            };
            match (set, delete) {
                (Some(level), _) => (
                    Method::PUT,
                    path,
                    Some(Bytes::from(
                        json!({ "compatibility": level.to_ascii_uppercase() }).to_string(),
                    )),
                ),
                (None, true) => (Method::DELETE, path, None),
                (None, false) => (Method::GET, path, None),
            }
        }
    };
    let (status, body) = request(&args.registry, method, &path, body)
        .await
        .map_err(anyhow::Error::msg)?;
    let value: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if !status.is_success() {
        bail!(
            "registry answered {}: {}",
            status.as_u16(),
            value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or(&value.to_string())
        );
    }
    println!("{}", serde_json::to_string_pretty(&value)?);
    if let SchemaCommand::Check { .. } = args.command {
        if value.get("is_compatible") == Some(&Value::Bool(false)) {
            bail!("the schema is not compatible");
        }
    }
    Ok(())
}

/// `--value-format` and its companions for `strom produce` and `strom consume`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ValueFormatArgs {
    /// How values are written or read: string (as is), avro (JSON encoded / decoded through
    /// the Schema Registry), json-schema or protobuf.
    #[arg(long = "value-format", default_value = "string")]
    value_format: String,
    /// The schema file values are written with (produce): Avro JSON, a JSON Schema or a
    /// `.proto` file.
    #[arg(long = "value-schema", value_name = "FILE")]
    value_schema: Option<PathBuf>,
    /// With protobuf: the message type of the values (full name, or relative to the file's
    /// package); the file's first message by default (produce).
    #[arg(long = "value-message", value_name = "NAME")]
    value_message: Option<String>,
    /// The Schema Registry's URL.
    #[arg(long = "schema-registry", default_value = "http://127.0.0.1:8081")]
    schema_registry: String,
}

/// The value formats produce and consume handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    String,
    Avro,
    JsonSchema,
    Protobuf,
}

fn check_format(args: &ValueFormatArgs) -> Result<Format> {
    match args.value_format.as_str() {
        "string" => Ok(Format::String),
        "avro" => Ok(Format::Avro),
        "json-schema" | "json" => Ok(Format::JsonSchema),
        "protobuf" => Ok(Format::Protobuf),
        other => bail!("unknown --value-format '{other}' (string, avro, json-schema, protobuf)"),
    }
}

/// Encodes JSON lines through the registry (produce).
pub(crate) enum ValueEncoder {
    Avro(Box<strom_registry::serde::AvroSerializer>),
    Json(strom_registry::serde::JsonSchemaSerializer),
    Protobuf(strom_registry::serde::ProtobufSerializer),
}

impl ValueEncoder {
    pub(crate) fn new(args: &ValueFormatArgs) -> Result<Option<ValueEncoder>> {
        let format = check_format(args)?;
        if format == Format::String {
            return Ok(None);
        }
        if args.value_message.is_some() && format != Format::Protobuf {
            bail!("--value-message goes with --value-format protobuf");
        }
        let path = args.value_schema.as_ref().with_context(|| {
            format!(
                "--value-format {} needs --value-schema FILE",
                args.value_format
            )
        })?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let client = strom_registry::serde::RegistryClient::new(&args.schema_registry);
        let encoder = match format {
            Format::Avro => ValueEncoder::Avro(Box::new(
                strom_registry::serde::AvroSerializer::new(client, Some(&text), Default::default())
                    .with_context(|| format!("{}", path.display()))?,
            )),
            Format::Protobuf => ValueEncoder::Protobuf(
                strom_registry::serde::ProtobufSerializer::new(
                    client,
                    Some(&text),
                    args.value_message.as_deref(),
                    Default::default(),
                )
                .with_context(|| format!("{}", path.display()))?,
            ),
            Format::JsonSchema | Format::String => ValueEncoder::Json(
                strom_registry::serde::JsonSchemaSerializer::new(
                    client,
                    Some(&text),
                    Default::default(),
                )
                .with_context(|| format!("{}", path.display()))?,
            ),
        };
        Ok(Some(encoder))
    }

    pub(crate) async fn encode(&self, topic: &str, line: &str) -> Result<Vec<u8>> {
        let json: Value =
            serde_json::from_str(line).with_context(|| format!("input is not JSON: {line}"))?;
        Ok(match self {
            ValueEncoder::Avro(s) => s.serialize_json(topic, &json).await?,
            ValueEncoder::Json(s) => s.serialize_json(topic, &json).await?,
            ValueEncoder::Protobuf(s) => s.serialize_json(topic, &json).await?,
        })
    }
}

/// Decodes Confluent-framed values to JSON text (consume).
pub(crate) enum ValueDecoder {
    Avro(strom_registry::serde::AvroDeserializer),
    Json(strom_registry::serde::JsonSchemaDeserializer),
    Protobuf(strom_registry::serde::ProtobufDeserializer),
}

impl ValueDecoder {
    pub(crate) fn new(args: &ValueFormatArgs) -> Result<Option<ValueDecoder>> {
        let client = strom_registry::serde::RegistryClient::new(&args.schema_registry);
        Ok(match check_format(args)? {
            Format::String => None,
            Format::Avro => Some(ValueDecoder::Avro(
                strom_registry::serde::AvroDeserializer::new(client),
            )),
            Format::JsonSchema => Some(ValueDecoder::Json(
                strom_registry::serde::JsonSchemaDeserializer::new(client),
            )),
            Format::Protobuf => Some(ValueDecoder::Protobuf(
                strom_registry::serde::ProtobufDeserializer::new(client),
            )),
        })
    }

    /// The record with its value replaced by the decoded JSON.
    pub(crate) async fn decode(
        &self,
        r: &strom_client::ConsumerRecord,
    ) -> Result<strom_client::ConsumerRecord> {
        let mut out = r.clone();
        if let Some(v) = &r.value {
            let json = match self {
                ValueDecoder::Avro(d) => d.deserialize_json(v).await,
                ValueDecoder::Json(d) => d.deserialize_json(v).await,
                ValueDecoder::Protobuf(d) => d.deserialize_json(v).await,
            }
            .with_context(|| format!("record {}-{}@{}", r.topic, r.partition, r.offset))?;
            out.value = Some(Bytes::from(json.to_string()));
        }
        Ok(out)
    }
}
