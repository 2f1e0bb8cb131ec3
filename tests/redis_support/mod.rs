//! Shared by the `redis_*` tests: throwaway `redis-server`s (single or a 3-node
//! cluster) on free 127.0.0.1 ports, persistence off, stopped by pid on drop; and
//! in-memory rustls handshakes.
//!
//! Needs the `redis-server` and `redis-cli` binaries (Debian: `apt-get install -y
//! redis-server`); without them every test fails saying so.
#![allow(dead_code)]

#[path = "../tls_support/mod.rs"]
pub mod tls;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const INSTALL: &str = "the redis tests need the `redis-server` and `redis-cli` binaries \
     on PATH: install them (Debian/Ubuntu: `apt-get install -y redis-server`)";

fn check_binaries() {
    for bin in ["redis-server", "redis-cli"] {
        let ok = Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`{bin}` not found or not runnable: {INSTALL}");
    }
}

/// A free port `p` on 127.0.0.1 with `p + 10000` free too (a cluster's bus port).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p <= 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "tsc-redis-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One `redis-server` child process.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    cluster: bool,
    extra: Vec<String>,
}

impl RedisServer {
    /// A fresh server on a free port.
    pub fn start() -> Self {
        Self::start_on(free_port(), false)
    }

    /// A fresh server with extra command-line arguments (e.g.
    /// `["--rename-command", "GETDEL", ""]` to play a Redis older than 6.2).
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_full(free_port(), false, args)
    }

    fn start_on(port: u16, cluster: bool) -> Self {
        Self::start_full(port, cluster, &[])
    }

    fn start_full(port: u16, cluster: bool, extra: &[&str]) -> Self {
        check_binaries();
        let dir = scratch_dir(&port.to_string());
        let mut s = RedisServer {
            port,
            dir,
            child: None,
            cluster,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--enable-debug-command", "local"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "2000"]);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}: {INSTALL}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Runs `redis-cli -p PORT args…`; its stdout (empty if it could not connect).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("redis-cli: {e}: {INSTALL}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A raw connection for the test's own commands.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Kills the server (SIGKILL, by pid) and waits for its port to close.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops the process (`kill -STOP PID`): connections stay open, nothing is
    /// answered, as with a server stuck in a long command or swapped out.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (`kill -CONT PID`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.pid());
    }

    /// Starts it again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A local 3-node Redis Cluster (3 primaries, no replicas).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A cluster whose nodes get extra command-line arguments (e.g.
    /// `["--rename-command", "GETDEL", ""]`).
    pub fn start_with(args: &[&str]) -> Self {
        let mut nodes: Vec<RedisServer> = Vec::new();
        while nodes.len() < 3 {
            let p = free_port();
            if nodes.iter().all(|n| n.port != p) {
                nodes.push(RedisServer::start_full(p, true, args));
            }
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("redis-cli: {e}: {INSTALL}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &nodes {
            while !n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The number of keys each node holds.
    pub fn key_counts(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| n.cli(&["DBSIZE"]).trim().parse().unwrap_or(0))
            .collect()
    }
}
