//! A second, independent client: kafka-python (pure Python, not librdkafka) drives the real
//! binary through `tests/python/kafka_python_interop.py`.

mod common;

use std::process::Command;

#[test]
fn kafka_python_admin_produce_consume() {
    let server = common::Server::start(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/kafka_python_interop.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(server.bootstrap())
        .output()
        .expect("python3 runs (scripts/test installs kafka-python)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kafka-python interop failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("kafka-python interop OK"), "{stdout}");
}
