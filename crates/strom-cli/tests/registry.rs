//! The Schema Registry (issue 13) against the real binary: confluent-kafka's Python
//! SchemaRegistryClient and Avro, JSON Schema and Protobuf serdes producing through Strom and
//! consuming back (and reading what `strom produce` wrote), raw HTTP
//! for exact status and error codes, ids stable across restarts, two instances over one
//! broker with primary failover, and a registry whose storage topic was deleted.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strom_registry::http_client::{request, Method};

/// One HTTP call; returns the status, the parsed body and the content type.
fn http(base: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = body.map(|b| bytes::Bytes::from(b.to_string()));
    let (status, bytes) = rt
        .block_on(request(base, method, path, body))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status.as_u16(), value)
}

fn get(base: &str, path: &str) -> (u16, Value) {
    http(base, Method::GET, path, None)
}

fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    http(base, Method::POST, path, Some(body))
}

fn put(base: &str, path: &str, body: Value) -> (u16, Value) {
    http(base, Method::PUT, path, Some(body))
}

fn delete(base: &str, path: &str) -> (u16, Value) {
    http(base, Method::DELETE, path, None)
}

/// Asserts a Confluent error answer.
#[track_caller]
fn assert_error(answer: (u16, Value), status: u16, code: u64) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error_code"], json!(code), "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn wait_http(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    while rt
        .block_on(request(base, Method::GET, "/subjects", None))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "registry at {base} never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A broker with the embedded registry on a free port.
fn server_with_registry() -> (common::Server, String) {
    let url = format!("http://127.0.0.1:{}", common::free_port());
    let server = common::Server::start(&[("schema.registry.listeners", &url)]);
    wait_http(&url);
    (server, url)
}

fn record(name: &str, fields: Value) -> Value {
    json!({"schema": json!({"type": "record", "name": name, "fields": fields}).to_string()})
}

#[test]
fn confluent_python_avro_serdes_through_strom() {
    let (server, url) = server_with_registry();
    let path = format!(
        "{}/../../tests/python/schema_registry_avro.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = Command::new("python3")
        .arg(&path)
        .arg(server.bootstrap())
        .arg(&url)
        .output()
        .expect("python3 runs (scripts/test installs confluent-kafka)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("schema registry avro OK"), "{stdout}");
}

#[test]
fn rest_api_status_and_error_codes() {
    let (_server, url) = server_with_registry();
    let u = url.as_str();
    let user_v1 = record("User", json!([{"name": "name", "type": "string"}]));
    let user_v2 = record(
        "User",
        json!([{"name": "name", "type": "string"}, {"name": "age", "type": "int", "default": 0}]),
    );
    let user_bad = record(
        "User",
        json!([{"name": "name", "type": "string"}, {"name": "age", "type": "int"}]),
    );

    assert_eq!(
        get(u, "/schemas/types"),
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );
    assert_eq!(get(u, "/subjects"), (200, json!([])));
    assert_error(get(u, "/schemas/ids/12345"), 404, 40403);
    assert_error(get(u, "/schemas/ids/abc"), 404, 40403);
    assert_error(get(u, "/subjects/nope/versions"), 404, 40401);
    assert_error(get(u, "/subjects/nope/versions/latest"), 404, 40401);
    assert_error(get(u, "/no/such/endpoint"), 404, 404);

    // Register, and the same schema again: same id, one version.
    let (s, v) = post(u, "/subjects/users/versions", user_v1.clone());
    assert_eq!(s, 200, "{v}");
    let id1 = v["id"].as_i64().unwrap();
    assert_eq!(
        post(u, "/subjects/users/versions", user_v1.clone()).1["id"],
        json!(id1)
    );
    assert_eq!(get(u, "/subjects/users/versions"), (200, json!([1])));
    let (s, v) = get(u, "/subjects/users/versions/latest");
    assert_eq!(s, 200);
    assert_eq!(v["subject"], "users");
    assert_eq!(v["version"], 1);
    assert_eq!(v["id"], json!(id1));
    assert_eq!(
        get(u, &format!("/schemas/ids/{id1}/subjects")).1,
        json!(["users"])
    );
    assert_eq!(
        get(u, &format!("/schemas/ids/{id1}/versions")).1,
        json!([{"subject": "users", "version": 1}])
    );
    let (s, raw) = get(u, "/subjects/users/versions/1/schema");
    assert_eq!(s, 200);
    assert_eq!(raw["type"], "record");

    // Versions: unknown, malformed.
    assert_error(get(u, "/subjects/users/versions/7"), 404, 40402);
    assert_error(get(u, "/subjects/users/versions/abc"), 422, 42202);
    assert_error(get(u, "/subjects/users/versions/0"), 422, 42202);

    // Bad schemas and bodies.
    assert_error(
        post(
            u,
            "/subjects/users/versions",
            json!({"schema": "{\"type\":\"recordx\"}"}),
        ),
        422,
        42201,
    );
    assert_error(
        post(u, "/subjects/users/versions", json!({"schema": "not json"})),
        422,
        42201,
    );
    assert_error(
        post(u, "/subjects/users/versions", json!({"schema": ""})),
        422,
        42201,
    );
    assert_error(post(u, "/subjects/users/versions", json!({})), 422, 42201);
    assert_error(
        post(
            u,
            "/subjects/users/versions",
            json!({"schema": "\"string\"", "schemaType": "XML"}),
        ),
        422,
        42201,
    );
    // An invalid .proto is refused with the compiler's message.
    let (s, v) = post(
        u,
        "/subjects/pb/versions",
        json!({"schema": "syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }", "schemaType": "PROTOBUF"}),
    );
    assert_eq!((s, v["error_code"].clone()), (422, json!(42201)), "{v}");
    assert!(v["message"].as_str().unwrap().contains("number"), "{v}");
    assert_error(
        http(u, Method::POST, "/subjects/users/versions", None),
        400,
        400,
    );

    // Lookup by schema.
    let (s, v) = post(u, "/subjects/users", user_v1.clone());
    assert_eq!(
        (s, v["version"].clone(), v["id"].clone()),
        (200, json!(1), json!(id1))
    );
    assert_error(post(u, "/subjects/users", user_v2.clone()), 404, 40403);
    assert_error(post(u, "/subjects/nobody", user_v1.clone()), 404, 40401);

    // Compatibility: BACKWARD by default.
    let (s, v) = post(
        u,
        "/compatibility/subjects/users/versions/latest?verbose=true",
        user_bad.clone(),
    );
    assert_eq!(s, 200);
    assert_eq!(v["is_compatible"], false);
    assert!(!v["messages"].as_array().unwrap().is_empty(), "{v}");
    let (_, v) = post(
        u,
        "/compatibility/subjects/users/versions/latest",
        user_v2.clone(),
    );
    assert_eq!(v, json!({"is_compatible": true}));
    assert_error(
        post(u, "/subjects/users/versions", user_bad.clone()),
        409,
        409,
    );
    assert_eq!(get(u, "/subjects/users/versions").1, json!([1]));
    let (s, v) = post(u, "/subjects/users/versions", user_v2.clone());
    assert_eq!(s, 200, "{v}");
    let id2 = v["id"].as_i64().unwrap();
    assert_ne!(id1, id2);

    // Config.
    assert_eq!(
        get(u, "/config").1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_error(get(u, "/config/users"), 404, 40408);
    assert_eq!(
        get(u, "/config/users?defaultToGlobal=true").1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_error(
        put(u, "/config/users", json!({"compatibility": "SIDEWAYS"})),
        422,
        42203,
    );
    assert_eq!(
        put(u, "/config/users", json!({"compatibility": "FULL"})),
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        get(u, "/config/users").1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        delete(u, "/config/users"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_error(get(u, "/config/users"), 404, 40408);

    // Mode.
    assert_eq!(get(u, "/mode").1, json!({"mode": "READWRITE"}));
    assert_error(put(u, "/mode", json!({"mode": "SOMETIMES"})), 422, 42204);
    assert_error(get(u, "/mode/users"), 404, 40409);
    assert_eq!(put(u, "/mode/users", json!({"mode": "READONLY"})).0, 200);
    let user_v3 = record(
        "User",
        json!([{"name": "name", "type": "string"}, {"name": "age", "type": "int", "default": 0},
               {"name": "email", "type": ["null", "string"], "default": null}]),
    );
    assert_error(
        post(u, "/subjects/users/versions", user_v3.clone()),
        422,
        42205,
    );
    assert_error(put(u, "/mode/users", json!({"mode": "IMPORT"})), 422, 42205);
    assert_eq!(delete(u, "/mode/users"), (200, json!({"mode": "READONLY"})));
    assert_eq!(post(u, "/subjects/users/versions", user_v3).0, 200);

    // References: Person refers to Address registered under its own subject.
    let address = record("Address", json!([{"name": "city", "type": "string"}]));
    let (s, v) = post(u, "/subjects/address/versions", address);
    assert_eq!(s, 200, "{v}");
    let person = json!({
        "schema": json!({"type": "record", "name": "Person", "fields": [
            {"name": "name", "type": "string"}, {"name": "home", "type": "Address"}]}).to_string(),
        "references": [{"name": "Address", "subject": "address", "version": 1}],
    });
    let (s, v) = post(u, "/subjects/person/versions", person.clone());
    assert_eq!(s, 200, "{v}");
    let person_id = v["id"].clone();
    let (_, v) = get(u, &format!("/schemas/ids/{person_id}"));
    assert_eq!(v["references"][0]["subject"], "address", "{v}");
    assert_eq!(
        get(u, "/subjects/address/versions/1/referencedby").1,
        json!([person_id])
    );
    assert_error(delete(u, "/subjects/address/versions/1"), 422, 42206);
    assert_error(delete(u, "/subjects/address"), 422, 42206);
    let dangling = json!({
        "schema": json!({"type": "record", "name": "P2", "fields": [
            {"name": "home", "type": "Address"}]}).to_string(),
        "references": [{"name": "Address", "subject": "address", "version": 9}],
    });
    assert_error(post(u, "/subjects/p2/versions", dangling), 422, 42201);
    // Without the reference, the named type is unknown.
    let unresolved = json!({"schema": json!({"type": "record", "name": "P3", "fields": [
        {"name": "home", "type": "Address"}]}).to_string()});
    assert_error(post(u, "/subjects/p3/versions", unresolved), 422, 42201);

    // Deletes: versions, then subjects; soft before permanent.
    assert_error(
        delete(u, "/subjects/users/versions/1?permanent=true"),
        404,
        40407,
    );
    assert_eq!(delete(u, "/subjects/users/versions/1"), (200, json!(1)));
    assert_error(delete(u, "/subjects/users/versions/1"), 404, 40406);
    // A soft deleted version's schema is still served by id.
    assert_eq!(get(u, &format!("/schemas/ids/{id1}")).0, 200);
    assert_eq!(get(u, "/subjects/users/versions").1, json!([2, 3]));
    assert_eq!(
        get(u, "/subjects/users/versions?deleted=true").1,
        json!([1, 2, 3])
    );
    assert_eq!(
        delete(u, "/subjects/users/versions/1?permanent=true"),
        (200, json!(1))
    );
    assert_eq!(
        get(u, "/subjects/users/versions?deleted=true").1,
        json!([2, 3])
    );
    // Permanently deleted, and used by no other subject-version: the id is not found.
    assert_error(get(u, &format!("/schemas/ids/{id1}")), 404, 40403);
    assert_error(get(u, &format!("/schemas/ids/{id1}/schema")), 404, 40403);
    assert_eq!(get(u, &format!("/schemas/ids/{id2}")).0, 200);
    assert_error(delete(u, "/subjects/users?permanent=true"), 404, 40405);
    assert_eq!(delete(u, "/subjects/users"), (200, json!([2, 3])));
    assert_error(delete(u, "/subjects/users"), 404, 40404);
    assert_error(get(u, "/subjects/users/versions"), 404, 40401);
    assert!(!get(u, "/subjects")
        .1
        .as_array()
        .unwrap()
        .contains(&json!("users")));
    assert!(get(u, "/subjects?deleted=true")
        .1
        .as_array()
        .unwrap()
        .contains(&json!("users")));
    assert_eq!(get(u, "/subjects?deletedOnly=true").1, json!(["users"]));
    assert_eq!(
        delete(u, "/subjects/users?permanent=true"),
        (200, json!([2, 3]))
    );
    assert_error(delete(u, "/subjects/users"), 404, 40401);
    assert_error(get(u, &format!("/schemas/ids/{id2}")), 404, 40403);
    assert_eq!(get(u, "/subjects?subjectPrefix=pers").1, json!(["person"]));
    // Ids stay: re-registering v1 gets its old id back, and new schemas never reuse one.
    let (_, v) = post(u, "/subjects/users/versions", user_v1);
    assert_eq!(v["id"], json!(id1));
    assert_eq!(get(u, "/subjects/users/versions").1, json!([1]));
    assert_eq!(get(u, &format!("/schemas/ids/{id1}")).0, 200);
}

#[test]
fn transitive_levels_check_every_version() {
    let (_server, url) = server_with_registry();
    let u = url.as_str();
    // v1 {a}, v2 {a, b=default} ; v3 {b}: v3 can read v2 data but not v1 data? Both lack
    // nothing v3 needs without default... so use a required field that v1 lacks.
    let v1 = record("R", json!([{"name": "a", "type": "int"}]));
    let v2 = record(
        "R",
        json!([{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 1}]),
    );
    // Reads v2 data (b is there), but v1 data has no b and the field has no default.
    let v3 = record(
        "R",
        json!([{"name": "a", "type": "int"}, {"name": "b", "type": "int"}]),
    );
    for (subject, level, v3_status) in [
        ("bw", "BACKWARD", 200),
        ("bwt", "BACKWARD_TRANSITIVE", 409),
        ("none", "NONE", 200),
    ] {
        assert_eq!(
            put(
                u,
                &format!("/config/{subject}"),
                json!({"compatibility": level})
            )
            .0,
            200
        );
        assert_eq!(
            post(u, &format!("/subjects/{subject}/versions"), v1.clone()).0,
            200
        );
        assert_eq!(
            post(u, &format!("/subjects/{subject}/versions"), v2.clone()).0,
            200
        );
        let (s, v) = post(u, &format!("/subjects/{subject}/versions"), v3.clone());
        assert_eq!(s, v3_status, "{level}: {v}");
    }
    // Against one version, whatever the level says.
    let (_, v) = post(u, "/compatibility/subjects/bwt/versions/1", v3.clone());
    assert_eq!(v["is_compatible"], false);
    let (_, v) = post(u, "/compatibility/subjects/bwt/versions/2", v3);
    assert_eq!(v["is_compatible"], true);
}

#[test]
fn ids_survive_a_restart() {
    let (mut server, url) = server_with_registry();
    let u = url.as_str();
    let mut ids = Vec::new();
    for i in 0..5 {
        let schema = record(&format!("R{i}"), json!([{"name": "f", "type": "long"}]));
        let (s, v) = post(u, &format!("/subjects/s{i}/versions"), schema);
        assert_eq!(s, 200, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    assert!(server.stop(), "clean stop");
    server.restart();
    wait_http(u);
    for (i, id) in ids.iter().enumerate() {
        let (s, v) = get(u, &format!("/subjects/s{i}/versions/1"));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["id"], json!(id));
    }
    let (_, v) = post(u, "/subjects/new/versions", record("New", json!([])));
    assert_eq!(v["id"].as_i64().unwrap(), ids.iter().max().unwrap() + 1);
}

/// A standalone `strom registry` process.
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    fn start(bootstrap: &str) -> Registry {
        let url = format!("http://127.0.0.1:{}", common::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(["registry", "--bootstrap", bootstrap, "--listeners", &url])
            .env(
                "STROM_LOG",
                std::env::var("STROM_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start strom registry");
        wait_http(&url);
        Registry { child, url }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[test]
fn two_instances_share_state_and_fail_over() {
    let server = common::Server::start(&[]);
    let mut a = Registry::start(&server.bootstrap());
    let mut b = Registry::start(&server.bootstrap());
    // Writes to either instance; both serve every schema.
    let mut ids = Vec::new();
    for i in 0..6 {
        let to = if i % 2 == 0 { &a.url } else { &b.url };
        let (s, v) = post(
            to,
            &format!("/subjects/t{i}/versions"),
            record(&format!("T{i}"), json!([])),
        );
        assert_eq!(s, 200, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 6, "distinct ids: {ids:?}");
    for reg in [&a.url, &b.url] {
        for (i, id) in ids.iter().enumerate() {
            let (s, v) = get(reg, &format!("/subjects/t{i}/versions/latest"));
            assert_eq!(s, 200, "{reg}: {v}");
            assert_eq!(v["id"], json!(id));
        }
    }
    // Kill the primary: the other one takes the role, with every schema.
    let primary_is_a = {
        let (_, v) = get(&a.url, "/subjects");
        assert_eq!(v.as_array().unwrap().len(), 6);
        // The primary is whichever holds the group's partition; ask the group through a write
        // path: kill each in turn is slower, so look at the member list via the broker.
        which_is_primary(&server.bootstrap(), &a.url, &b.url)
    };
    let survivor = if primary_is_a {
        a.kill9();
        b.url.clone()
    } else {
        b.kill9();
        a.url.clone()
    };
    let started = Instant::now();
    let (s, v) = post(
        &survivor,
        "/subjects/after/versions",
        record("After", json!([])),
    );
    assert_eq!(s, 200, "{v}");
    let new_id = v["id"].as_i64().unwrap();
    assert_eq!(
        new_id,
        ids.iter().max().unwrap() + 1,
        "no id reused or skipped"
    );
    eprintln!("failover write took {:?}", started.elapsed());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            get(&survivor, &format!("/subjects/t{i}/versions/1")).1["id"],
            json!(id)
        );
    }
}

/// True when the instance at `a` is the primary: the registry group's member holding the
/// partition reports its URL as client id.
fn which_is_primary(bootstrap: &str, a: &str, b: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = strom_client::Admin::new(strom_client::ClientConfig::new(bootstrap))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let groups = admin
                .describe_groups(&["schema-registry".to_string()])
                .await
                .unwrap();
            let holder = groups
                .into_iter()
                .flat_map(|g| g.members)
                .find(|m| !m.assignment.is_empty())
                .map(|m| m.client_id);
            match holder.as_deref() {
                Some(h) if h == a => return true,
                Some(h) if h == b => return false,
                _ => {}
            }
            assert!(Instant::now() < deadline, "no primary: {holder:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[test]
fn lost_storage_topic_is_a_clear_error_and_loses_nothing_served() {
    let (server, url) = server_with_registry();
    let u = url.as_str();
    let (_, v) = post(u, "/subjects/keep/versions", record("Keep", json!([])));
    let id = v["id"].clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = strom_client::Admin::new(strom_client::ClientConfig::new(&server.bootstrap()))
            .await
            .unwrap();
        admin
            .delete_topics(&["_schemas".to_string()])
            .await
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    let (s, v) = post(u, "/subjects/new/versions", record("New", json!([])));
    assert_eq!(s, 500, "{v}");
    assert!(v["error_code"].as_u64().unwrap() / 10 == 5000, "{v}");
    assert!(v["message"].as_str().unwrap().contains("_schemas"), "{v}");
    // What was registered is still served with its id.
    assert_eq!(get(u, "/subjects/keep/versions/1").1["id"], id);
    assert_eq!(get(u, &format!("/schemas/ids/{id}")).0, 200);
}

fn run_with_stdin(cmd: &mut Command, stdin: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn strom_cli_avro_and_confluent_python_read_each_other() {
    let (server, url) = server_with_registry();
    let bootstrap = server.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("payment.avsc");
    std::fs::write(
        &schema,
        r#"{"type":"record","name":"Payment","namespace":"shop","fields":[
            {"name":"id","type":"long"},{"name":"amount","type":"double"},
            {"name":"memo","type":["null","string"],"default":null},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","CASH"]}}]}"#,
    )
    .unwrap();
    let lines = [
        r#"{"amount":9.5,"id":1,"kind":"CARD","memo":"hi"}"#,
        r#"{"amount":1.25,"id":2,"kind":"CASH","memo":null}"#,
        r#"{"amount":0.0,"id":3,"kind":"CARD","memo":"three"}"#,
    ];
    let input = lines.join("\n") + "\n";
    let python = format!(
        "{}/../../tests/python/schema_registry_cli_interop.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let strom = env!("CARGO_BIN_EXE_strom");

    // strom produce (Rust serializer) -> Python AvroDeserializer.
    run_with_stdin(
        Command::new(strom)
            .args([
                "produce",
                "pay-cli",
                "-b",
                &bootstrap,
                "--value-format",
                "avro",
                "--schema-registry",
                &url,
                "--value-schema",
            ])
            .arg(&schema),
        &input,
    );
    let read = run_with_stdin(
        Command::new("python3").args([&python, &bootstrap, &url, "read", "pay-cli", "3"]),
        "",
    );
    assert_eq!(read.lines().collect::<Vec<_>>(), lines);

    // Python AvroSerializer -> strom consume (Rust deserializer).
    run_with_stdin(
        Command::new("python3")
            .arg(&python)
            .args([&bootstrap, &url, "write", "pay-py"])
            .arg(&schema),
        &input,
    );
    let consumed = run_with_stdin(
        Command::new(strom).args([
            "consume",
            "pay-py",
            "-b",
            &bootstrap,
            "--from-beginning",
            "-n",
            "3",
            "--value-format",
            "avro",
            "--schema-registry",
            &url,
        ]),
        "",
    );
    assert_eq!(consumed.lines().collect::<Vec<_>>(), lines);
    // Both wrote with the same schema: one id, under two subjects.
    let (_, a) = get(&url, "/subjects/pay-cli-value/versions/1");
    let (_, b) = get(&url, "/subjects/pay-py-value/versions/1");
    assert_eq!(a["id"], b["id"]);

    // A line that does not fit the schema is a clear error, not a panic.
    let out = Command::new(strom)
        .args([
            "produce",
            "pay-cli",
            "-b",
            &bootstrap,
            "--value-format",
            "avro",
            "--schema-registry",
            &url,
            "--value-schema",
        ])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"{\"id\":\"x\"}\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot encode"));
}

#[test]
fn strom_schema_commands() {
    let (_server, url) = server_with_registry();
    let strom = env!("CARGO_BIN_EXE_strom");
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.avsc");
    let bad = dir.path().join("bad.avsc");
    std::fs::write(
        &v1,
        r#"{"type":"record","name":"C","fields":[{"name":"a","type":"int"}]}"#,
    )
    .unwrap();
    std::fs::write(
        &bad,
        r#"{"type":"record","name":"C","fields":[{"name":"b","type":"int"}]}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(strom)
            .args(["schema", "-r", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["register", "cfg", "-f", v1.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let id: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(id["id"].as_i64().is_some());
    let out = run(&["get", "cfg"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
    let out = run(&["list"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!(["cfg"])
    );
    let out = run(&["check", "cfg", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "incompatible must fail");
    let out = run(&["config", "cfg", "--set", "none"]);
    assert!(out.status.success(), "{out:?}");
    assert!(run(&["check", "cfg", "-f", bad.to_str().unwrap()])
        .status
        .success());
    let out = run(&["get", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("40401")
            || String::from_utf8_lossy(&out.stderr).contains("not found")
    );
    // A .proto file with --type protobuf.
    let proto = dir.path().join("p.proto");
    std::fs::write(&proto, "syntax = \"proto3\";\nmessage P { int32 a = 1; }\n").unwrap();
    let out = run(&[
        "register",
        "pb",
        "-f",
        proto.to_str().unwrap(),
        "--type",
        "protobuf",
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&run(&["get", "pb"]).stdout).unwrap();
    assert_eq!(v["schemaType"], "PROTOBUF");
    assert!(run(&["delete", "pb"]).status.success());
    let out = run(&["delete", "cfg"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&run(&["list"]).stdout).unwrap(),
        json!([])
    );
}

#[test]
fn json_schema_with_confluent_python_serdes_and_strom_consume() {
    let (server, url) = server_with_registry();
    let bootstrap = server.bootstrap();
    let python = format!(
        "{}/../../tests/python/schema_registry_json.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = run_with_stdin(
        Command::new("python3").args([&python, &bootstrap, &url, "readings"]),
        "",
    );
    assert!(out.contains("schema registry json OK"), "{out}");
    // strom consume decodes what the Python JSONSerializer wrote.
    let strom = env!("CARGO_BIN_EXE_strom");
    let consumed = run_with_stdin(
        Command::new(strom).args([
            "consume",
            "readings",
            "-b",
            &bootstrap,
            "--from-beginning",
            "-n",
            "3",
            "--value-format",
            "json-schema",
            "--schema-registry",
            &url,
        ]),
        "",
    );
    let values: Vec<Value> = consumed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values[1], json!({"sensor": "s1", "value": 1.5}));
    assert_eq!(values.len(), 3);
    // strom produce --value-format json-schema registers a JSON schema and frames values.
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("reading.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","properties":{"sensor":{"type":"string"}}}"#,
    )
    .unwrap();
    run_with_stdin(
        Command::new(strom)
            .args([
                "produce",
                "readings-cli",
                "-b",
                &bootstrap,
                "--value-format",
                "json-schema",
                "--schema-registry",
                &url,
                "--value-schema",
            ])
            .arg(&schema),
        "{\"sensor\":\"cli\"}\n",
    );
    let (s, v) = get(&url, "/subjects/readings-cli-value/versions/1");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["schemaType"], "JSON");
    let consumed = run_with_stdin(
        Command::new(strom).args([
            "consume",
            "readings-cli",
            "-b",
            &bootstrap,
            "--from-beginning",
            "-n",
            "1",
            "--value-format",
            "json-schema",
            "--schema-registry",
            &url,
        ]),
        "",
    );
    assert_eq!(consumed.trim(), r#"{"sensor":"cli"}"#);
    // A value the schema rejects is not produced: a clear error naming the line and what is
    // wrong; the valid line before it is delivered, nothing after it is sent.
    let out = Command::new(strom)
        .args([
            "produce",
            "readings-cli",
            "-b",
            &bootstrap,
            "--value-format",
            "json-schema",
            "--schema-registry",
            &url,
            "--value-schema",
        ])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"{\"sensor\":\"ok\"}\n{\"sensor\":42}\n{\"sensor\":\"after\"}\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for part in [
        "input line 2",
        "does not match the JSON schema",
        "/sensor",
        "string",
    ] {
        assert!(stderr.contains(part), "no {part:?} in: {stderr}");
    }
    let consumed = run_with_stdin(
        Command::new(strom).args([
            "consume",
            "readings-cli",
            "-b",
            &bootstrap,
            "--from-beginning",
            "-n",
            "3",
            "--timeout-ms",
            "3000",
            "--value-format",
            "json-schema",
            "--schema-registry",
            &url,
        ]),
        "",
    );
    assert_eq!(
        consumed.lines().collect::<Vec<_>>(),
        [r#"{"sensor":"cli"}"#, r#"{"sensor":"ok"}"#]
    );
    // An invalid JSON Schema is refused with 42201.
    assert_error(
        post(
            &url,
            "/subjects/j/versions",
            json!({"schema": "{\"type\": \"strin\"}", "schemaType": "JSON"}),
        ),
        422,
        42201,
    );
}

#[test]
fn a_fenced_former_primary_cannot_write() {
    use std::sync::{Arc, RwLock};
    use strom_registry::model::{SchemaType, SchemaValue, StoreRecord};
    use strom_registry::state::State;
    use strom_registry::store::Store;

    let server = common::Server::start(&[]);
    let bootstrap = server.bootstrap();
    let record = |subject: &str, id: i32| StoreRecord::Schema {
        subject: subject.into(),
        version: 1,
        value: Some(SchemaValue {
            subject: subject.into(),
            version: 1,
            id,
            schema_type: SchemaType::Avro,
            references: vec![],
            schema: "\"long\"".into(),
            deleted: false,
        }),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let state_a = Arc::new(RwLock::new(State::default()));
        let state_b = Arc::new(RwLock::new(State::default()));
        let a = Store::open(&bootstrap, "_schemas", "sr-primary", state_a.clone())
            .await
            .unwrap();
        a.append(record("first", 1)).await.unwrap();
        // B becomes the writer: its InitProducerId fences A.
        let b = Store::open(&bootstrap, "_schemas", "sr-primary", state_b.clone())
            .await
            .unwrap();
        b.append(record("second", 2)).await.unwrap();
        let err = a.append(record("zombie", 2)).await.unwrap_err();
        assert!(err.to_string().contains("_schemas"), "{err}");
        b.read_to_end().await.unwrap();
        a.read_to_end().await.unwrap();
        for st in [&state_a, &state_b] {
            let st = st.read().unwrap();
            let subjects: Vec<&String> = st.subjects(false).collect();
            assert_eq!(
                subjects,
                ["first", "second"],
                "the zombie's write is not visible"
            );
        }
    });
}

#[test]
fn import_mode_keeps_given_ids_and_versions() {
    let (_server, url) = server_with_registry();
    let u = url.as_str();
    let mut schema = record("Imported", json!([{"name": "a", "type": "int"}]));
    schema["id"] = json!(1000);
    schema["version"] = json!(5);
    // Not in IMPORT mode: choosing the id is refused.
    assert_error(
        post(u, "/subjects/imp/versions", schema.clone()),
        422,
        42205,
    );
    assert_eq!(
        put(u, "/mode/imp", json!({"mode": "IMPORT"})),
        (200, json!({"mode": "IMPORT"}))
    );
    assert_eq!(
        post(u, "/subjects/imp/versions", schema.clone()),
        (200, json!({"id": 1000}))
    );
    assert_eq!(get(u, "/subjects/imp/versions/5").1["id"], json!(1000));
    assert_eq!(get(u, "/schemas/ids/1000").0, 200);
    // Another schema may not take an imported id.
    let mut clash = record("Other", json!([]));
    clash["id"] = json!(1000);
    assert_error(post(u, "/subjects/imp/versions", clash), 422, 42205);
    // Ids handed out afterwards continue above the imported one.
    assert_eq!(delete(u, "/mode/imp").0, 200);
    let (_, v) = post(
        u,
        "/subjects/after-import/versions",
        record("After", json!([])),
    );
    assert_eq!(v["id"], json!(1001));
    // The registry-wide switch to IMPORT needs an empty registry unless forced.
    assert_error(put(u, "/mode", json!({"mode": "IMPORT"})), 422, 42205);
    assert_eq!(put(u, "/mode?force=true", json!({"mode": "IMPORT"})).0, 200);
    assert_eq!(get(u, "/mode").1, json!({"mode": "IMPORT"}));
}

const MONEY_PROTO: &str = "syntax = \"proto3\";\npackage common;\n\n// Money in minor units.\nmessage Money {\n  string currency = 1;\n  int64 units = 2;\n}\n";

fn order_proto(customer_type: &str) -> String {
    format!(
        "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nimport \"google/protobuf/timestamp.proto\";\n\nmessage Order {{\n  int64 id = 1;\n  {customer_type} customer = 2;\n  common.Money total = 3;\n  google.protobuf.Timestamp placed_at = 4;\n}}\n"
    )
}

#[test]
fn protobuf_rest_api_references_compatibility_and_formats() {
    let (_server, url) = server_with_registry();
    let u = url.as_str();
    let pb = |text: &str| json!({"schema": text, "schemaType": "PROTOBUF"});
    let money_ref =
        json!([{"name": "common/money.proto", "subject": "common/money.proto", "version": 1}]);
    let with_refs = |text: &str| json!({"schema": text, "schemaType": "PROTOBUF", "references": money_ref.clone()});

    // The import target first, under a subject holding a '/'.
    let (s, v) = post(
        u,
        "/subjects/common%2Fmoney.proto/versions",
        pb(MONEY_PROTO),
    );
    assert_eq!(s, 200, "{v}");
    let money_id = v["id"].as_i64().unwrap();
    // Without the reference, the import is unknown: 42201 naming it.
    let (s, v) = post(
        u,
        "/subjects/orders-value/versions",
        pb(&order_proto("string")),
    );
    assert_eq!((s, v["error_code"].clone()), (422, json!(42201)), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("common/money.proto"),
        "{v}"
    );
    let (s, v) = post(
        u,
        "/subjects/orders-value/versions",
        with_refs(&order_proto("string")),
    );
    assert_eq!(s, 200, "{v}");
    let order_id = v["id"].as_i64().unwrap();

    // Served as text, with its type and references; as a descriptor with format=serialized.
    let (_, v) = get(u, &format!("/schemas/ids/{order_id}"));
    assert_eq!(v["schemaType"], "PROTOBUF");
    assert_eq!(v["schema"], json!(order_proto("string")));
    assert_eq!(v["references"], money_ref);
    let (_, v) = get(u, &format!("/schemas/ids/{order_id}?format=serialized"));
    let serialized = v["schema"].as_str().unwrap().to_owned();
    assert!(!serialized.contains("syntax"), "{serialized}");
    let refs = vec![("common/money.proto".to_owned(), MONEY_PROTO.to_owned())];
    let parsed = strom_registry::protobuf::parse(&serialized, &refs).unwrap();
    assert_eq!(parsed.file.package_name(), "shop");
    let (_, v) = get(u, "/subjects/orders-value/versions/1?format=serialized");
    assert_eq!(v["schema"], json!(serialized));
    // A schema registered as a descriptor is served as .proto text, as Confluent does.
    let (s, v) = post(u, "/subjects/desc/versions", with_refs(&serialized));
    assert_eq!(s, 200, "{v}");
    let (_, v) = get(u, &format!("/schemas/ids/{}", v["id"]));
    let text = v["schema"].as_str().unwrap();
    assert!(
        text.starts_with("syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";"),
        "{text}"
    );
    assert!(text.contains("  .common.Money total = 3;"), "{text}");
    assert_eq!(delete(u, "/subjects/desc").0, 200);
    assert_eq!(delete(u, "/subjects/desc?permanent=true").0, 200);
    // The descriptor form is the same schema to the compatibility check and registers as a
    // new text of it (no change, so compatible).
    let (_, v) = post(
        u,
        "/compatibility/subjects/orders-value/versions/latest",
        with_refs(&serialized),
    );
    assert_eq!(v, json!({"is_compatible": true}));

    // Lookup by schema.
    let (s, v) = post(
        u,
        "/subjects/orders-value",
        with_refs(&order_proto("string")),
    );
    assert_eq!((s, v["id"].clone()), (200, json!(order_id)), "{v}");

    // An incompatible change: refused with Confluent's difference type in the messages.
    let (_, v) = post(
        u,
        "/compatibility/subjects/orders-value/versions/latest?verbose=true",
        with_refs(&order_proto("int64")),
    );
    assert_eq!(v["is_compatible"], false, "{v}");
    assert!(
        v["messages"]
            .to_string()
            .contains("FIELD_SCALAR_KIND_CHANGED"),
        "{v}"
    );
    assert_error(
        post(
            u,
            "/subjects/orders-value/versions",
            with_refs(&order_proto("int64")),
        ),
        409,
        409,
    );
    // string -> bytes is wire compatible.
    let (s, v) = post(
        u,
        "/subjects/orders-value/versions",
        with_refs(&order_proto("bytes")),
    );
    assert_eq!(s, 200, "{v}");
    // The referenced version cannot go while referenced.
    assert_error(
        delete(u, "/subjects/common%2Fmoney.proto/versions/1"),
        422,
        42206,
    );
    assert_eq!(
        get(u, "/subjects/common%2Fmoney.proto/versions/1/referencedby").1,
        json!([order_id, v["id"].as_i64().unwrap()])
    );

    // normalize: layout and comments do not make another schema.
    let (_, a) = post(u, "/subjects/norm/versions?normalize=true", pb(MONEY_PROTO));
    let squashed = MONEY_PROTO
        .replace("// Money in minor units.\n", "")
        .replace("\n  ", " ");
    let (_, b) = post(u, "/subjects/norm/versions?normalize=true", pb(&squashed));
    assert_eq!(a["id"], b["id"]);
    assert_ne!(
        a["id"],
        json!(money_id),
        "the normalized text is stored, not the given one"
    );
    assert_eq!(get(u, "/subjects/norm/versions").1, json!([1]));

    // GET /schemas: every version, by subject then version; latestOnly; prefix; paging.
    let (s, all) = get(u, "/schemas");
    assert_eq!(s, 200, "{all}");
    let listed: Vec<(String, i64)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["subject"].as_str().unwrap().to_owned(),
                v["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("common/money.proto".to_owned(), 1),
            ("norm".to_owned(), 1),
            ("orders-value".to_owned(), 1),
            ("orders-value".to_owned(), 2)
        ]
    );
    assert_eq!(all[2]["schemaType"], "PROTOBUF");
    let (_, latest) = get(u, "/schemas?latestOnly=true&subjectPrefix=orders");
    assert_eq!(latest.as_array().unwrap().len(), 1);
    assert_eq!(latest[0]["version"], 2);
    let (_, paged) = get(u, "/schemas?offset=1&limit=2");
    assert_eq!(paged.as_array().unwrap(), &all.as_array().unwrap()[1..3]);
    assert_error(get(u, "/schemas?limit=many"), 400, 400);
    assert_eq!(get(u, "/subjects?offset=1&limit=1").1, json!(["norm"]));
    assert_eq!(
        get(u, "/subjects/orders-value/versions?offset=1").1,
        json!([2])
    );
    assert_eq!(
        get(u, &format!("/schemas/ids/{money_id}/versions?limit=1")).1,
        json!([{"subject": "common/money.proto", "version": 1}])
    );
    // fetchMaxId.
    let (_, v) = get(u, &format!("/schemas/ids/{money_id}?fetchMaxId=true"));
    let max = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(v["maxId"], json!(max), "{v}");
}

#[test]
fn protobuf_confluent_python_serdes_and_strom_cli_read_each_other() {
    let (server, url) = server_with_registry();
    let bootstrap = server.bootstrap();
    let python = format!(
        "{}/../../tests/python/schema_registry_protobuf.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let strom = env!("CARGO_BIN_EXE_strom");
    let as_json = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    };

    // Python ProtobufSerializer (an Order, a Refund, an Order.Line: message indexes [0], [1],
    // [0, 0]) -> strom consume (Rust ProtobufDeserializer).
    let written = run_with_stdin(
        Command::new("python3").args([&python, &bootstrap, &url, "write", "orders-pb"]),
        "",
    );
    let written = as_json(&written);
    assert_eq!(written.len(), 3);
    // The serializer registered descriptors; they read back as .proto text.
    let (_, v) = get(&url, "/subjects/orders-pb-value/versions/1");
    let text = v["schema"].as_str().unwrap();
    assert!(text.contains("message Order {"), "{text}");
    assert!(text.contains("import \"common/money.proto\";"), "{text}");
    let consumed = run_with_stdin(
        Command::new(strom).args([
            "consume",
            "orders-pb",
            "-b",
            &bootstrap,
            "--from-beginning",
            "-n",
            "3",
            "--value-format",
            "protobuf",
            "--schema-registry",
            &url,
        ]),
        "",
    );
    assert_eq!(as_json(&consumed), written);
    assert_eq!(written[1], json!({"orderId": "7", "reason": "damaged"}));

    // strom produce (Rust ProtobufSerializer, from .proto text) -> Python ProtobufDeserializer.
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("payment.proto");
    std::fs::write(
        &schema,
        "syntax = \"proto3\";\npackage pay;\nimport \"google/protobuf/timestamp.proto\";\n\
         message Payment {\n  int64 id = 1;\n  double amount = 2;\n  string memo = 3;\n  \
         google.protobuf.Timestamp at = 4;\n  Kind kind = 5;\n  repeated string tags = 6;\n  \
         enum Kind { CARD = 0; CASH = 1; }\n}\n",
    )
    .unwrap();
    let lines = [
        r#"{"amount":9.5,"at":"2026-12-03T10:00:00Z","id":"1","kind":"CASH","memo":"hi","tags":["a","b"]}"#,
        r#"{"amount":1.25,"id":"2","memo":"two"}"#,
    ];
    let produce = |input: &str| {
        Command::new(strom)
            .args([
                "produce",
                "pay-pb",
                "-b",
                &bootstrap,
                "--value-format",
                "protobuf",
                "--schema-registry",
                &url,
                "--value-message",
                "pay.Payment",
                "--value-schema",
            ])
            .arg(&schema)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(input.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap()
    };
    let out = produce(&(lines.join("\n") + "\n"));
    assert!(out.status.success(), "{out:?}");
    let read = run_with_stdin(
        Command::new("python3").args([&python, &bootstrap, &url, "read", "pay-pb", "2"]),
        "",
    );
    assert_eq!(as_json(&read), as_json(&lines.join("\n")));
    let (_, v) = get(&url, "/subjects/pay-pb-value/versions/1");
    assert_eq!(v["schemaType"], "PROTOBUF", "{v}");

    // A line that does not fit the message is a clear error, not a panic.
    let out = produce("{\"id\":\"x\"}\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot encode") && stderr.contains("pay.Payment"),
        "{stderr}"
    );
    // So is a message the schema does not define.
    let out = Command::new(strom)
        .args([
            "produce",
            "pay-pb",
            "-b",
            &bootstrap,
            "--value-format",
            "protobuf",
        ])
        .args([
            "--schema-registry",
            &url,
            "--value-message",
            "pay.Nope",
            "--value-schema",
        ])
        .arg(&schema)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pay.Nope"));
}

#[test]
fn serializers_name_subjects_by_strategy_and_use_the_latest_version() {
    use strom_registry::serde::{
        JsonSchemaSerializer, ProtobufDeserializer, ProtobufSerializer, RegistryClient,
        SerializerConfig, SubjectNameStrategy,
    };
    let (_server, url) = server_with_registry();
    let u = url.as_str();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = RegistryClient::new(u);
    let config = |strategy, use_latest_version| SerializerConfig {
        strategy,
        use_latest_version,
        ..SerializerConfig::default()
    };
    let frame_id = |b: &[u8]| i32::from_be_bytes([b[1], b[2], b[3], b[4]]);

    // JSON Schema: the record name is the schema's title.
    let reading = r#"{"title":"Reading","type":"object","properties":{"v":{"type":"number"}}}"#;
    let ser = JsonSchemaSerializer::new(
        client.clone(),
        Some(reading),
        config(SubjectNameStrategy::TopicRecordName, false),
    )
    .unwrap();
    let framed = rt
        .block_on(ser.serialize_json("t", &json!({"v": 1})))
        .unwrap();
    let (_, v) = get(u, "/subjects/t-Reading/versions/1");
    assert_eq!(frame_id(&framed) as i64, v["id"].as_i64().unwrap(), "{v}");
    // use.latest.version: the subject's latest id, no schema given.
    let latest = JsonSchemaSerializer::new(
        client.clone(),
        None,
        config(SubjectNameStrategy::TopicName, true),
    )
    .unwrap();
    assert!(rt
        .block_on(latest.serialize_json("nothing", &json!({})))
        .is_err());
    post(
        u,
        "/subjects/lat-value/versions",
        json!({"schema": reading, "schemaType": "JSON"}),
    );
    let framed = rt
        .block_on(latest.serialize_json("lat", &json!({"v": 2})))
        .unwrap();
    assert_eq!(
        frame_id(&framed) as i64,
        get(u, "/subjects/lat-value/versions/1").1["id"]
            .as_i64()
            .unwrap()
    );
    // A latest schema of another type is refused.
    post(
        u,
        "/subjects/avro-value/versions",
        json!({"schema": "\"string\""}),
    );
    let err = rt
        .block_on(latest.serialize_json("avro", &json!("x")))
        .unwrap_err();
    assert!(err.to_string().contains("AVRO"), "{err}");
    assert!(JsonSchemaSerializer::new(client.clone(), None, SerializerConfig::default()).is_err());

    // Protobuf: RecordName names the subject after the message's full name.
    let proto = "syntax = \"proto3\";\npackage p;\nmessage A { string s = 1; }\nmessage B { int64 n = 1; }\n";
    let ser = ProtobufSerializer::new(
        client.clone(),
        Some(proto),
        Some("B"),
        config(SubjectNameStrategy::RecordName, false),
    )
    .unwrap();
    let framed = rt
        .block_on(ser.serialize_json("any", &json!({"n": "5"})))
        .unwrap();
    assert_eq!(
        frame_id(&framed) as i64,
        get(u, "/subjects/p.B/versions/1").1["id"].as_i64().unwrap()
    );
    assert_eq!(framed[5..7], [2, 2], "message index [1]");
    // use.latest.version with a message name and no schema.
    post(
        u,
        "/subjects/pl-value/versions",
        json!({"schema": proto, "schemaType": "PROTOBUF"}),
    );
    let latest = ProtobufSerializer::new(
        client.clone(),
        None,
        Some("p.B"),
        config(SubjectNameStrategy::TopicName, true),
    )
    .unwrap();
    let framed = rt
        .block_on(latest.serialize_json("pl", &json!({"n": 9})))
        .unwrap();
    assert_eq!(
        frame_id(&framed) as i64,
        get(u, "/subjects/pl-value/versions/1").1["id"]
            .as_i64()
            .unwrap()
    );
    let back = rt
        .block_on(ProtobufDeserializer::new(client.clone()).deserialize_json(&framed))
        .unwrap();
    assert_eq!(back, json!({"n": "9"}));
    // A value that is not the message is a clear error.
    let err = rt
        .block_on(latest.serialize_json("pl", &json!({"nope": 1})))
        .unwrap_err();
    assert!(err.to_string().contains("p.B"), "{err}");
    // A framed value naming a message the schema lacks is a decode error, not a panic.
    let mut bad = framed.clone();
    bad.splice(5..7, [2, 20]);
    assert!(rt
        .block_on(ProtobufDeserializer::new(client).deserialize(&bad))
        .is_err());
}

#[test]
fn json_schema_serializer_validates_values_through_references() {
    use strom_registry::model::SchemaReference;
    use strom_registry::serde::{
        JsonSchemaDeserializer, JsonSchemaSerializer, RegistryClient, SerdeError, SerializerConfig,
    };
    let (_server, url) = server_with_registry();
    let u = url.as_str();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = RegistryClient::new(u);

    // A referenced schema under its own subject, and a schema whose `$ref` names it.
    let address = json!({"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"], "additionalProperties": false});
    let (s, v) = post(
        u,
        "/subjects/address/versions",
        json!({"schema": address.to_string(), "schemaType": "JSON"}),
    );
    assert_eq!(s, 200, "{v}");
    let customer = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "home": {"$ref": "address.json"}}, "required": ["name"]})
    .to_string();
    // Without the reference the `$ref` resolves to nothing: 42201, nothing registered.
    assert_error(
        post(
            u,
            "/subjects/customers-value/versions",
            json!({"schema": customer, "schemaType": "JSON"}),
        ),
        422,
        42201,
    );
    assert_error(get(u, "/subjects/customers-value/versions"), 404, 40401);
    // Nor does a reference under another name.
    assert_error(
        post(
            u,
            "/subjects/customers-value/versions",
            json!({"schema": customer, "schemaType": "JSON", "references": [
                {"name": "other.json", "subject": "address", "version": 1}]}),
        ),
        422,
        42201,
    );

    // The serializer registers the schema with its reference and validates through it.
    let refs = vec![SchemaReference {
        name: "address.json".into(),
        subject: "address".into(),
        version: 1,
    }];
    let ser =
        JsonSchemaSerializer::new(client.clone(), Some(&customer), SerializerConfig::default())
            .unwrap()
            .with_references(refs);
    let good = json!({"name": "ada", "home": {"city": "London"}});
    let framed = rt.block_on(ser.serialize_json("customers", &good)).unwrap();
    let (_, v) = get(u, "/subjects/customers-value/versions/1");
    assert_eq!(
        v["references"],
        json!([{"name": "address.json", "subject": "address", "version": 1}])
    );
    let id = v["id"].as_i64().unwrap() as i32;
    assert_eq!(framed[1..5], id.to_be_bytes());
    for (bad, at) in [
        (json!({"name": "ada", "home": {}}), "/home"),
        (
            json!({"name": "ada", "home": {"city": "x", "zip": 1}}),
            "/home",
        ),
        (json!({"name": 7}), "/name"),
        (json!({"home": {"city": "x"}}), "\"name\""),
    ] {
        let err = rt
            .block_on(ser.serialize_json("customers", &bad))
            .unwrap_err();
        assert!(
            matches!(err, SerdeError::Encode { id: i, .. } if i == id),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("does not match") && text.contains(at),
            "{bad}: {text}"
        );
    }
    // Validation can be turned off: the value is framed as it is.
    let lax = JsonSchemaSerializer::new(
        client.clone(),
        None,
        SerializerConfig {
            use_latest_version: true,
            ..SerializerConfig::default()
        },
    )
    .unwrap()
    .with_validation(false);
    let invalid = rt
        .block_on(lax.serialize_json("customers", &json!({"name": 7})))
        .unwrap();
    // use.latest.version validates through the latest schema's references too.
    let latest = JsonSchemaSerializer::new(
        client.clone(),
        None,
        SerializerConfig {
            use_latest_version: true,
            ..SerializerConfig::default()
        },
    )
    .unwrap();
    assert!(rt
        .block_on(latest.serialize_json("customers", &json!({"name": "b", "home": 1})))
        .is_err());
    rt.block_on(latest.serialize_json("customers", &good))
        .unwrap();

    // Deserializers: plain ones return what was written; validating ones refuse it.
    let plain = JsonSchemaDeserializer::new(client.clone());
    assert_eq!(rt.block_on(plain.deserialize_json(&framed)).unwrap(), good);
    assert_eq!(
        rt.block_on(plain.deserialize_json(&invalid)).unwrap(),
        json!({"name": 7})
    );
    let strict = JsonSchemaDeserializer::new(client).with_validation(true);
    assert_eq!(rt.block_on(strict.deserialize_json(&framed)).unwrap(), good);
    let err = rt.block_on(strict.deserialize_json(&invalid)).unwrap_err();
    assert!(
        matches!(&err, SerdeError::Decode(m) if m.contains("/name")),
        "{err}"
    );
}

#[test]
fn json_schema_references_with_confluent_python_serdes() {
    let (server, url) = server_with_registry();
    let python = format!(
        "{}/../../tests/python/schema_registry_json_refs.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = run_with_stdin(
        Command::new("python3").args([&python, &server.bootstrap(), &url, "orders"]),
        "",
    );
    assert!(out.contains("schema registry json refs OK"), "{out}");
    // strom consume decodes what the Python serializer wrote with the referencing schema.
    let consumed = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_strom")).args([
            "consume",
            "orders",
            "-b",
            &server.bootstrap(),
            "--from-beginning",
            "-n",
            "2",
            "--value-format",
            "json-schema",
            "--schema-registry",
            &url,
        ]),
        "",
    );
    let first: Value = serde_json::from_str(consumed.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        json!({"id": 1, "ship_to": {"city": "Lyon", "zip": "69001"}})
    );
}
