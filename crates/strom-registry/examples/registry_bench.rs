//! Registry figures: lookups by id per second and their latency (from the in-memory state,
//! over HTTP keep-alive on loopback), registrations per second (each one a write to
//! `_schemas` with acks=all, read back before the answer), and the Avro, Protobuf and JSON
//! Schema serializers' and deserializers' cost per record once the schema id is cached.
//!
//! Usage: cargo run --release -p strom-registry --example registry_bench -- BOOTSTRAP
//! (a running broker, e.g. `strom server`); the registry runs in this process.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;
use strom_registry::serde::{
    AvroDeserializer, AvroSerializer, JsonSchemaSerializer, ProtobufDeserializer,
    ProtobufSerializer, RegistryClient,
};
use strom_registry::RegistryConfig;

const REGISTRATIONS: usize = 500;
const LOOKUP_SECONDS: u64 = 5;
const SERDE_RECORDS: usize = 200_000;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Sender {
    let stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn call(
    sender: &mut Sender,
    authority: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

fn schema(i: usize) -> String {
    json!({"type": "record", "name": format!("Bench{i}"), "namespace": "bench", "fields": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
        {"name": "amount", "type": "double"}, {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "note", "type": ["null", "string"], "default": null}]})
    .to_string()
}

fn report(name: &str, h: &Histogram<u64>, elapsed: Duration) {
    println!(
        "{name}: {} requests in {:.2} s = {:.0}/s; latency p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        h.len(),
        elapsed.as_secs_f64(),
        h.len() as f64 / elapsed.as_secs_f64(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

#[tokio::main]
async fn main() {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let authority = format!("127.0.0.1:{port}");
    let url = format!("http://{authority}");
    let mut config = RegistryConfig::new(&bootstrap, &url);
    config.topic = format!("_schemas_bench_{port}");
    config.group_id = format!("schema-registry-bench-{port}");
    tokio::spawn(async move {
        if let Err(e) = strom_registry::run(config, std::future::pending()).await {
            eprintln!("registry failed: {e}");
            std::process::exit(1);
        }
    });
    let mut sender = loop {
        if let Ok(s) = tokio::net::TcpStream::connect(&authority).await {
            drop(s);
            break connect(&authority).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Registrations, one at a time (the first waits for the primary election).
    let (status, body) = call(
        &mut sender,
        &authority,
        "POST",
        "/subjects/warmup/versions",
        Some(json!({"schema": schema(usize::MAX)}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let mut h = Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    for i in 0..REGISTRATIONS {
        let t = Instant::now();
        let (status, body) = call(
            &mut sender,
            &authority,
            "POST",
            &format!("/subjects/s{i}/versions"),
            Some(json!({"schema": schema(i)}).to_string()),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    report(
        "registrations (sequential, 1 connection)",
        &h,
        started.elapsed(),
    );

    // Lookups by id, one connection, sequential.
    let mut h = Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    let mut i = 0usize;
    while started.elapsed() < Duration::from_secs(LOOKUP_SECONDS) {
        let id = 1 + (i * 7919) % REGISTRATIONS;
        let t = Instant::now();
        let (status, _) = call(
            &mut sender,
            &authority,
            "GET",
            &format!("/schemas/ids/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        h.record(t.elapsed().as_micros() as u64).unwrap();
        i += 1;
    }
    report(
        "lookups by id (sequential, 1 connection)",
        &h,
        started.elapsed(),
    );

    // Lookups by id, 8 connections in parallel.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..8 {
        let authority = authority.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(&authority).await;
            let mut h = Histogram::<u64>::new(3).unwrap();
            let mut i = c;
            while started.elapsed() < Duration::from_secs(LOOKUP_SECONDS) {
                let id = 1 + (i * 7919) % REGISTRATIONS;
                let t = Instant::now();
                let (status, _) = call(
                    &mut sender,
                    &authority,
                    "GET",
                    &format!("/schemas/ids/{id}"),
                    None,
                )
                .await;
                assert_eq!(status, 200);
                h.record(t.elapsed().as_micros() as u64).unwrap();
                i += 8;
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    report("lookups by id (8 connections)", &all, started.elapsed());

    // Serializer and deserializer cost per record, schema id cached.
    let client = RegistryClient::new(&url);
    let ser = AvroSerializer::new(client.clone(), Some(&schema(0)), Default::default()).unwrap();
    let deser = AvroDeserializer::new(client.clone());
    let record = json!({"id": 12345, "name": "a bench record", "amount": 12.5,
                        "tags": ["x", "y"], "note": "hello"});
    let plain = record.to_string().into_bytes();
    let avro_value = apache_avro::types::Value::try_from(record.clone()).unwrap();
    let framed = ser.serialize("bench", avro_value.clone()).await.unwrap();
    let _ = deser.deserialize(&framed).await.unwrap();

    let t = Instant::now();
    let mut total = 0usize;
    for _ in 0..SERDE_RECORDS {
        total += Bytes::copy_from_slice(std::hint::black_box(&plain)).len();
    }
    let plain_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    let t = Instant::now();
    for _ in 0..SERDE_RECORDS {
        total += ser
            .serialize("bench", avro_value.clone())
            .await
            .unwrap()
            .len();
    }
    let ser_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    let t = Instant::now();
    for _ in 0..SERDE_RECORDS {
        total += deser
            .deserialize(std::hint::black_box(&framed))
            .await
            .is_ok() as usize;
    }
    let de_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    println!(
        "serdes ({SERDE_RECORDS} records, {} B Avro framed vs {} B JSON): plain bytes copy {plain_ns:.0} ns/record, Avro serialize {ser_ns:.0} ns/record, Avro deserialize {de_ns:.0} ns/record (checksum {total})",
        framed.len(),
        plain.len()
    );

    // The same record as a Protobuf message.
    let proto = "syntax = \"proto3\"; package bench; message Bench { int64 id = 1; \
                 string name = 2; double amount = 3; repeated string tags = 4; \
                 optional string note = 5; }";
    let pser =
        ProtobufSerializer::new(client.clone(), Some(proto), None, Default::default()).unwrap();
    let pdeser = ProtobufDeserializer::new(client.clone());
    let message =
        prost_reflect::DynamicMessage::deserialize(pser.message().unwrap().clone(), &record)
            .unwrap();
    let pframed = pser.serialize("bench-pb", &message).await.unwrap();
    let _ = pdeser.deserialize(&pframed).await.unwrap();
    let t = Instant::now();
    for _ in 0..SERDE_RECORDS {
        total += pser.serialize("bench-pb", &message).await.unwrap().len();
    }
    let pser_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    let t = Instant::now();
    for _ in 0..SERDE_RECORDS {
        total += pdeser
            .deserialize(std::hint::black_box(&pframed))
            .await
            .is_ok() as usize;
    }
    let pde_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    println!(
        "protobuf serdes ({} B framed): serialize {pser_ns:.0} ns/record, deserialize {pde_ns:.0} ns/record (checksum {total})",
        pframed.len()
    );

    // The same record through the JSON Schema serializer, validating (the default) or not.
    let json_schema = json!({"type": "object", "additionalProperties": false,
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                       "amount": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}},
                       "note": {"type": ["null", "string"]}},
        "required": ["id", "name", "amount"]})
    .to_string();
    let jser =
        JsonSchemaSerializer::new(client.clone(), Some(&json_schema), Default::default()).unwrap();
    let jlax = JsonSchemaSerializer::new(client, Some(&json_schema), Default::default())
        .unwrap()
        .with_validation(false);
    let jframed = jser.serialize_json("bench-json", &record).await.unwrap();
    jlax.serialize_json("bench-json", &record).await.unwrap();
    let t = Instant::now();
    for _ in 0..SERDE_RECORDS {
        total += jser
            .serialize_json("bench-json", &record)
            .await
            .unwrap()
            .len();
    }
    let jser_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    let t = Instant::now();
    for _ in 0..SERDE_RECORDS {
        total += jlax
            .serialize_json("bench-json", &record)
            .await
            .unwrap()
            .len();
    }
    let jlax_ns = t.elapsed().as_nanos() as f64 / SERDE_RECORDS as f64;
    println!(
        "json schema serializer ({} B framed): validating {jser_ns:.0} ns/record, not validating {jlax_ns:.0} ns/record (checksum {total})",
        jframed.len()
    );
}
