//! A second, independent client: kafka-python (pure Python, not librdkafka) drives the real
//! binary through `tests/python/kafka_python_interop.py`.

mod common;

#[test]
fn kafka_python_admin_produce_consume() {
    let server = common::Server::start(&[]);
    common::run_python_client(
        &server,
        "kafka_python_interop.py",
        "kafka-python interop OK",
    );
}
