//! A real mosquitto broker (Debian's `mosquitto`, installed by scripts/install-deps) on a
//! free port with a temporary config file, and `mosquitto_pub` / `mosquitto_sub` runs.

#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Mosquitto {
    child: Child,
    pub port: u16,
    /// (user, password) when the broker takes only that user.
    pub credentials: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("mosquitto is not installed (scripts/install-deps installs it)")
}

impl Mosquitto {
    /// A broker taking anonymous clients, or only `user`/`password` when given.
    pub fn start(credentials: Option<(&str, &str)>) -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nmax_queued_messages 100000\n"
        );
        match credentials {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let pw = dir.path().join("passwords");
                let st = Command::new("mosquitto_passwd")
                    .args(["-c", "-b"])
                    .arg(&pw)
                    .args([user, password])
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(st.success(), "mosquitto_passwd failed");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    pw.display()
                ));
            }
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !strom_testkit::accepts(addr, Duration::from_millis(100)) {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto {
            child,
            port,
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            _dir: dir,
        }
    }

    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((u, p)) = &self.credentials {
            c.args(["-u", u, "-P", p]);
        }
        c
    }

    /// Publishes each line as one message to `topic` with `mosquitto_pub -l` at `qos`.
    pub fn publish_lines(&self, topic: &str, qos: u8, lines: &[String]) {
        let mut child = self
            .client("mosquitto_pub")
            .args(["-t", topic, "-q", &qos.to_string(), "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run mosquitto_pub");
        let mut input = child.stdin.take().unwrap();
        let mut text = lines.join("\n");
        text.push('\n');
        input.write_all(text.as_bytes()).unwrap();
        drop(input);
        let st = child.wait().unwrap();
        assert!(st.success(), "mosquitto_pub failed: {st}");
    }

    /// Starts `mosquitto_sub` with `args` (after the connection ones), its stdout piped and
    /// line-buffered (`stdbuf -oL`, so `-d` debug lines come as they happen); killed when
    /// dropped.
    pub fn sub_child(&self, args: &[&str]) -> SubProcess {
        let mut c = Command::new("stdbuf");
        c.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string());
        if let Some((u, p)) = &self.credentials {
            c.args(["-u", u, "-P", p]);
        }
        SubProcess(
            c.args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("run mosquitto_sub"),
        )
    }

    /// Runs `mosquitto_sub` with `args` (after the connection ones) and returns its output.
    pub fn sub(&self, args: &[&str]) -> Output {
        self.client("mosquitto_sub")
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run mosquitto_sub")
    }
}

/// A running `mosquitto_sub`, killed when dropped (also when a test fails).
pub struct SubProcess(pub Child);

impl Drop for SubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
