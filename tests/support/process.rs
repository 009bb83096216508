//! The real `mutua serve` binary as a child process: started on a data directory, its address,
//! operator token and recovered state read from what it prints, killed with SIGKILL or stopped
//! with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `mutua serve` and what it printed on the way up.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub operator_token: Option<String>,
    /// (sequence, state hash) it recovered to.
    pub recovered: (u64, String),
    /// Journal records it replayed on top of its base snapshot to get there.
    pub replayed_records: u64,
    /// `http://<address>/metrics`.
    pub metrics: String,
    pub lines: mpsc::Receiver<String>,
}

/// The server's log: discarded, or kept in `$MUTUA_TEST_LOGS` (one file per data directory) to
/// look into a failure.
fn stderr_sink(data: &Path) -> Stdio {
    let Some(dir) = std::env::var_os("MUTUA_TEST_LOGS") else {
        return Stdio::null();
    };
    let name = data
        .file_name()
        .map_or("server".into(), |name| name.to_string_lossy().into_owned());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&dir).join(format!("{name}.log")))
        .map_or(Stdio::null(), Stdio::from)
}

pub fn start(data: &Path) -> Server {
    start_with(data, &["--snapshot-every", "700"])
}

/// As `start`, with extra `mutua serve` flags.
pub fn start_with(data: &Path, extra_flags: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mutua"));
    command.arg("serve");
    if !extra_flags.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra_flags)
        .arg("--data")
        .arg(data)
        .env(
            "RUST_LOG",
            std::env::var("MUTUA_TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(stderr_sink(data))
        .spawn()
        .expect("start mutua serve");
    let (sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let (mut address, mut operator_token, mut recovered, mut replayed_records, mut metrics) =
        (None, None, None, 0, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while address.is_none() {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server printed its address");
        if let Some(rest) = line.strip_prefix("mutua listening on ") {
            address = Some(format!("http://{}", rest.trim()));
        } else if let Some(token) = line
            .strip_prefix("operator token")
            .and_then(|rest| rest.rsplit(": ").next())
        {
            operator_token = Some(token.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("mutua metrics on ") {
            metrics = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("replayed ") {
            replayed_records = rest
                .split_whitespace()
                .next()
                .and_then(|count| count.parse().ok())
                .expect("replayed line");
        } else if let Some(rest) = line.strip_prefix("mutua state at sequence ") {
            let (sequence, hash) = rest.split_once(" has state hash ").expect("state line");
            recovered = Some((sequence.parse().expect("sequence"), hash.trim().to_string()));
        }
    }
    Server {
        child,
        address: address.unwrap(),
        operator_token,
        recovered: recovered.expect("state line printed"),
        replayed_records,
        metrics: metrics.expect("metrics address printed"),
        lines,
    }
}

impl Server {
    /// One sample of the server's metrics endpoint (`None` if absent or unreachable).
    pub fn metric(&self, name: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let host = self
            .metrics
            .trim_start_matches("http://")
            .trim_end_matches("/metrics");
        let mut socket = std::net::TcpStream::connect(host).ok()?;
        write!(
            socket,
            "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        socket.read_to_string(&mut response).ok()?;
        response.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM and wait, for a caller that keeps the value.
    pub fn terminate_in_place(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the (sequence, state hash) it reports as it stops cleanly.
    pub fn terminate(mut self) -> (u64, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "graceful shutdown must exit 0, got {exit}");
        let line = self
            .lines
            .iter()
            .find(|line| line.starts_with("mutua stopped at sequence "))
            .expect("stop line");
        let rest = line.trim_start_matches("mutua stopped at sequence ");
        let (sequence, hash) = rest
            .split_once(" with state hash ")
            .expect("stop line format");
        (sequence.parse().unwrap(), hash.trim().to_string())
    }
}
