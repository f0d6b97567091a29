//! `standalone::run` with bad input: each mistake is a clear error, before anything runs.

use std::path::PathBuf;

use strom_connect::standalone::run;

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn run_err(worker: &std::path::Path, connectors: &[PathBuf]) -> String {
    run(worker, connectors, std::future::pending())
        .await
        .expect_err("run must fail")
        .to_string()
}

#[tokio::test]
async fn bad_files_and_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let offsets = d.join("offsets").display().to_string();
    let good_worker = write(
        d,
        "worker.properties",
        &format!("bootstrap.servers=127.0.0.1:1\nlisteners=http://127.0.0.1:0\noffset.storage.file.filename={offsets}\n"),
    );

    let e = run_err(&d.join("missing.properties"), &[]).await;
    assert!(
        e.starts_with("cannot read ") && e.contains("missing.properties"),
        "{e}"
    );

    let no_offsets = write(d, "w2.properties", "listeners=http://127.0.0.1:0\n");
    assert_eq!(
        run_err(&no_offsets, &[]).await,
        "Missing required configuration \"offset.storage.file.filename\" which has no default value."
    );

    let https = write(
        d,
        "w3.properties",
        &format!("listeners=https://127.0.0.1:0\noffset.storage.file.filename={offsets}\n"),
    );
    assert!(run_err(&https, &[])
        .await
        .contains("only http:// listeners are supported"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let busy = write(
        d,
        "w4.properties",
        &format!("listeners=http://127.0.0.1:{port}\noffset.storage.file.filename={offsets}\n"),
    );
    assert!(run_err(&busy, &[])
        .await
        .starts_with(&format!("cannot listen on http://127.0.0.1:{port}")));

    let nameless = write(
        d,
        "c1.properties",
        "connector.class=FileStreamSource\nfile=/tmp/x\ntopic=t\n",
    );
    assert_eq!(
        run_err(&good_worker, &[nameless]).await,
        "Connector config must contain a 'name'"
    );

    let bad = write(
        d,
        "c2.properties",
        "name=bad\nconnector.class=FileStreamSource\ntopic=a,b\n",
    );
    assert_eq!(
        run_err(&good_worker, &[bad]).await,
        "Connector configuration is invalid and contains the following 2 error(s):\n\
         Missing required configuration \"file\" which has no default value.\n\
         Invalid value a,b for configuration topic: 'topic' configuration requires definition of a single topic\n\
         You can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`"
    );

    let unknown = write(
        d,
        "c3.properties",
        "name=u\nconnector.class=io.example.Missing\n",
    );
    assert!(run_err(&good_worker, &[unknown]).await.starts_with("Failed to find any class that implements Connector and which name matches io.example.Missing"));

    std::fs::write(&offsets, "{not json").unwrap();
    assert!(run_err(&good_worker, &[])
        .await
        .contains("is not valid JSON"));
}
