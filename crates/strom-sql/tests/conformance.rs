//! The conformance table: each case in tests/conformance/*.json gives ksqlDB statements,
//! input records, the exact output records (keys, values, timestamps, window bounds) and
//! follow-up statements, push and pull queries with their exact results or errors. Run
//! against a real `strom server` and an in-process Strom SQL server per case.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value as J;

fn load_cases() -> Vec<(String, J)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let cases: Vec<J> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for c in cases {
            out.push((c["name"].as_str().unwrap().to_owned(), c));
        }
    }
    out
}

/// An output record as the case file writes it: key (a string; windowed keys split into
/// the key and `wstart`, plus `wend` for session windows), value (JSON or raw string, or
/// null for a tombstone) and optionally the timestamp.
fn actual(r: &strom_client::ConsumerRecord, expect: &J) -> J {
    let mut key = r.key.as_deref().map(<[u8]>::to_vec);
    let mut o = serde_json::Map::new();
    let be = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap());
    if let Some(k) = key.as_mut() {
        if expect.get("wend").is_some() {
            let n = k.len() - 16;
            o.insert("wend".into(), J::from(be(&k[n..n + 8])));
            o.insert("wstart".into(), J::from(be(&k[n + 8..])));
            k.truncate(n);
        } else if expect.get("wstart").is_some() {
            let n = k.len() - 8;
            o.insert("wstart".into(), J::from(be(&k[n..])));
            k.truncate(n);
        }
    }
    o.insert(
        "key".into(),
        key.map(|k| J::String(String::from_utf8_lossy(&k).into_owned()))
            .unwrap_or(J::Null),
    );
    let value = match r.value.as_deref() {
        None => J::Null,
        Some(v) => {
            if expect["value"].is_string() {
                J::String(String::from_utf8_lossy(v).into_owned())
            } else {
                serde_json::from_slice(v)
                    .unwrap_or_else(|_| J::String(String::from_utf8_lossy(v).into_owned()))
            }
        }
    };
    o.insert("value".into(), value);
    if expect.get("timestamp").is_some() {
        o.insert("timestamp".into(), J::from(r.timestamp));
    }
    J::Object(o)
}

async fn run_case(b: &str, name: &str, case: &J) {
    let state = tempfile::tempdir().unwrap();
    let sql = SqlServer::start(b, &format!("cf_{name}"), state.path(), &[]).await;
    for s in case["statements"].as_array().unwrap() {
        sql.ok(s.as_str().unwrap());
    }
    if let Some(inputs) = case["inputs"].as_array() {
        // In file order: consecutive records of one topic go in one batch.
        let mut runs: Vec<(String, Vec<In>)> = Vec::new();
        for i in inputs {
            let value = match &i["value"] {
                J::Null => None,
                J::String(s) => Some(s.as_bytes().to_vec()),
                other => Some(other.to_string().into_bytes()),
            };
            let key = i["key"].as_str().map(|k| k.as_bytes().to_vec());
            let topic = i["topic"].as_str().unwrap().to_owned();
            let rec = (key, value, i["timestamp"].as_i64().unwrap(), None);
            match runs.last_mut() {
                Some((t, recs)) if *t == topic => recs.push(rec),
                _ => runs.push((topic, vec![rec])),
            }
        }
        for (t, recs) in runs {
            produce(b, &t, &recs).await;
        }
    }
    if let Some(outputs) = case["outputs"].as_object() {
        for (topic, expect) in outputs {
            let expect = expect.as_array().unwrap();
            let got = read_n(
                b,
                topic,
                expect.len(),
                Duration::from_secs(60),
                Duration::from_millis(700),
            )
            .await;
            let mut got: Vec<J> = got
                .iter()
                .zip(expect.iter().chain(std::iter::repeat(&expect[0])))
                .map(|(r, e)| actual(r, e))
                .collect();
            let mut expect = expect.clone();
            if case["unordered"].as_bool() == Some(true) {
                got.sort_by_key(|j| j.to_string());
                expect.sort_by_key(|j| j.to_string());
            }
            assert_eq!(
                J::Array(got),
                J::Array(expect),
                "case {name}: output of {topic}"
            );
        }
    }
    for step in case["steps"].as_array().into_iter().flatten() {
        if let Some(q) = step.get("query") {
            run_query(&sql, name, q.as_str().unwrap(), step);
            continue;
        }
        let stmt = step["ksql"].as_str().unwrap();
        let (code, j) = sql.ksql(
            stmt,
            step.get("properties")
                .cloned()
                .unwrap_or(serde_json::json!({})),
        );
        if let Some(err) = step.get("error") {
            assert_eq!(code, 400, "case {name}: {stmt} should fail: {j}");
            assert_eq!(j["@type"], "statement_error", "case {name}: {j}");
            assert_eq!(j["error_code"], 40001, "case {name}: {j}");
            let msg = j["message"].as_str().unwrap();
            assert!(
                msg.contains(err.as_str().unwrap()),
                "case {name}: {stmt}: '{msg}' lacks '{err}'"
            );
            continue;
        }
        assert_eq!(code, 200, "case {name}: {stmt}: {j}");
        for (ptr, want) in step["expect"].as_object().into_iter().flatten() {
            // An expected null also matches an absent element.
            assert_eq!(
                j.pointer(ptr).unwrap_or(&J::Null),
                want,
                "case {name}: {stmt}: {ptr} in {j}"
            );
        }
        if let Some(names) = step.get("names_include") {
            let (ptr, want) = (names[0].as_str().unwrap(), names[1].as_str().unwrap());
            let list = j
                .pointer(ptr)
                .and_then(|l| l.as_array())
                .unwrap_or_else(|| panic!("{ptr} in {j}"));
            assert!(
                list.iter().any(|e| e["name"] == want),
                "case {name}: {want} not in {j}"
            );
        }
    }
    sql.stop().await;
}

/// A push or pull query through /query-stream (delimited): the header's column names and
/// the exact rows, or the error.
fn run_query(sql: &SqlServer, name: &str, q: &str, step: &J) {
    let body = serde_json::json!({"sql": q, "properties": step.get("properties").cloned().unwrap_or(serde_json::json!({}))}).to_string();
    let (code, _, text) = http(sql.port, "POST", "/query-stream", Some(&body), None);
    if let Some(err) = step.get("error") {
        assert_eq!(code, 400, "case {name}: {q}: {text}");
        assert!(
            text.contains(err.as_str().unwrap()),
            "case {name}: {q}: {text}"
        );
        return;
    }
    assert_eq!(code, 200, "case {name}: {q}: {text}");
    let mut lines = text.lines();
    let header: J = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["columnNames"], step["columns"], "case {name}: {q}");
    let rows: Vec<J> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(J::Array(rows), step["rows"], "case {name}: {q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_table() {
    init_logs();
    let broker = Server::start();
    let b = broker.bootstrap();
    let only = std::env::var("CONFORMANCE_CASE").ok();
    for (name, case) in load_cases() {
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let t = std::time::Instant::now();
        run_case(&b, &name, &case).await;
        eprintln!("conformance case {name}: ok in {:?}", t.elapsed());
    }
}
