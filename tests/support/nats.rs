//! A three-node NATS JetStream cluster on loopback ports, for the replication tests: each server
//! a `nats-server` child process with its own store, killed and restarted at will.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsCluster {
    _dir: tempfile::TempDir,
    stores: Vec<PathBuf>,
    client_ports: Vec<u16>,
    cluster_ports: Vec<u16>,
    servers: Vec<Option<Child>>,
    /// Extra flags of every server (client authorization).
    extra: Vec<String>,
}

/// A port free now (the test binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// `nats-server` on the PATH, or where Debian puts it (`/usr/sbin`, not on every user's PATH).
fn nats_server() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/nats-server");
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or(debian)
}

impl NatsCluster {
    /// Starts three servers and waits until they answer on their client ports.
    pub fn start() -> NatsCluster {
        NatsCluster::start_with(&[])
    }

    /// As `start`, where clients must give this user and password.
    pub fn start_with_user(user: &str, password: &str) -> NatsCluster {
        NatsCluster::start_with(&["--user", user, "--pass", password])
    }

    fn start_with(extra: &[&str]) -> NatsCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = (1..=3).map(|i| dir.path().join(format!("n{i}"))).collect();
        let client_ports = (0..3).map(|_| free_port()).collect();
        let cluster_ports = (0..3).map(|_| free_port()).collect();
        let mut cluster = NatsCluster {
            _dir: dir,
            stores,
            client_ports,
            cluster_ports,
            servers: vec![None, None, None],
            extra: extra.iter().map(|flag| flag.to_string()).collect(),
        };
        for index in 0..3 {
            cluster.start_server(index);
        }
        cluster
    }

    /// The `--replicate` value naming every server.
    pub fn urls(&self) -> String {
        self.client_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_server(&mut self, index: usize) {
        let routes = self
            .cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new(nats_server())
            .args(["-js", "-n", &format!("n{}", index + 1)])
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.client_ports[index].to_string(),
            ])
            .arg("-sd")
            .arg(&self.stores[index])
            .args(["--cluster_name", "mutua-test"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", self.cluster_ports[index]),
            ])
            .args(["--routes", &routes])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (apt-get install nats-server)");
        self.servers[index] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_ports[index])).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server {index} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL one server.
    pub fn kill_server(&mut self, index: usize) {
        if let Some(mut child) = self.servers[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..3 {
            self.kill_server(index);
        }
    }
}
