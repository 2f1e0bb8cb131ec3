//! Connections to Redis: the backend (one server or a cluster) with its names
//! resolved off the handshake path, the pool of idle connections, and
//! [`Link::call`], every lookup under the breaker and one total deadline.

use super::breaker::Breaker;
use super::config::{RedisConfig, Target};
use super::stats::{bump, AtomicStats};
use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisError, RedisResult,
};
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

enum Backend {
    Single(redis::Client),
    /// A cluster client is built per connect ([`Link::cluster_client`]): its
    /// timeouts are that connect's limit.
    Cluster,
}

/// One connection.
pub(super) enum Conn {
    Single(redis::Connection),
    Cluster(redis::cluster::ClusterConnection),
}

impl Conn {
    pub(super) fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => c,
        }
    }

    /// Read and write timeouts of each following command. A cluster connection
    /// may retry once (to follow a redirect): each try gets half.
    pub(super) fn set_timeouts(&self, t: Duration) -> RedisResult<()> {
        let t = Some(t.max(Duration::from_micros(1)));
        match self {
            Conn::Single(c) => {
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)
            }
            Conn::Cluster(c) => {
                let half = t.map(|t| (t / 2).max(Duration::from_micros(1)));
                c.set_read_timeout(half)?;
                c.set_write_timeout(half)
            }
        }
    }
}

/// A connection with the deadline of the call it serves.
pub(super) struct Call<'a> {
    conn: &'a mut Conn,
    deadline: Instant,
}

impl Call<'_> {
    /// Runs `cmd` within what is left of the deadline.
    pub(super) fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        self.conn.set_timeouts(left)?;
        cmd.query(self.conn.as_dyn())
    }
}

/// `Instant::now() + d`, or the latest instant representable when that
/// overflows (`Duration::MAX` in a setting: "no deadline", never a panic).
pub(super) fn instant_after(d: Duration) -> Instant {
    let now = Instant::now();
    let mut d = d;
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

pub(super) fn timed_out() -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::TimedOut,
        "Redis call deadline passed",
    ))
}

/// Why a call to Redis gave no answer.
pub(super) enum Failure {
    /// The breaker is open (or no address is known yet): not tried.
    Skipped,
    /// Tried and failed (already counted).
    Failed,
}

/// A URL with its host name replaced by an address (resolved here, by the
/// caller's thread: the constructor or the background writer).
fn resolve(info: &ConnectionInfo) -> RedisResult<ConnectionInfo> {
    let mut info = info.clone();
    if let ConnectionAddr::Tcp(host, port) = &mut info.addr {
        if host.parse::<IpAddr>().is_err() {
            let addr = (host.as_str(), *port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    RedisError::from((ErrorKind::IoError, "host name resolved to no address"))
                })?;
            *host = addr.ip().to_string();
        }
    }
    Ok(info)
}

/// The addresses the names resolved to, and the client made for them.
type Resolved = (Vec<ConnectionInfo>, Backend);

/// The backend, its pool of idle connections and the breaker.
pub(super) struct Link {
    /// The URLs as configured (names unresolved).
    infos: Vec<ConnectionInfo>,
    cluster: bool,
    cluster_retry_wait: u64,
    /// `None` until the names resolved once.
    backend: RwLock<Option<Arc<Resolved>>>,
    pool: Mutex<Vec<Conn>>,
    pool_size: usize,
    connect_timeout: Duration,
    /// A lookup's whole deadline (the check build of a cluster client).
    lookup_timeout: Duration,
    pub(super) breaker: Breaker,
}

impl Link {
    /// Parses the URLs (an invalid one is an error) and resolves their names
    /// once; if that fails, lookups are `Unavailable` until the writer's next
    /// resolution succeeds.
    pub(super) fn new(config: &RedisConfig) -> RedisResult<Self> {
        let (urls, cluster) = match &config.target {
            Target::Single(url) => (vec![url.clone()], false),
            Target::Cluster(nodes) => (nodes.clone(), true),
        };
        let infos = urls
            .iter()
            .map(|u| u.as_str().into_connection_info())
            .collect::<RedisResult<Vec<_>>>()?;
        let link = Link {
            infos,
            cluster,
            cluster_retry_wait: u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX),
            backend: RwLock::new(None),
            pool: Mutex::new(Vec::new()),
            pool_size: config.pool_size,
            connect_timeout: config.connect_timeout,
            lookup_timeout: config.timeout,
            breaker: Breaker::new(
                config.breaker_threshold,
                config.breaker_backoff,
                config.breaker_max_backoff,
            ),
        };
        // A name that does not resolve now is retried by the writer.
        let _ = link.resolve();
        Ok(link)
    }

    /// Whether the names have resolved at least once.
    pub(super) fn resolved(&self) -> bool {
        self.backend
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Resolves the names (blocking: never on a handshake) and installs a new
    /// backend if the addresses changed (the pool is emptied then). Returns
    /// whether it did.
    pub(super) fn resolve(&self) -> RedisResult<bool> {
        let resolved = self
            .infos
            .iter()
            .map(resolve)
            .collect::<RedisResult<Vec<_>>>()?;
        let same = |old: &Vec<ConnectionInfo>| {
            old.iter()
                .zip(&resolved)
                .all(|(a, b)| a.addr.to_string() == b.addr.to_string())
        };
        if let Some(current) = &*self.backend.read().unwrap_or_else(|e| e.into_inner()) {
            if same(&current.0) {
                return Ok(false);
            }
        }
        let backend = if self.cluster {
            // Built here only to check the node list; each connect builds its
            // own with its own limit.
            self.cluster_client(&resolved, self.lookup_timeout)?;
            Backend::Cluster
        } else {
            Backend::Single(redis::Client::open(resolved[0].clone())?)
        };
        *self.backend.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new((resolved, backend)));
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(true)
    }

    /// A cluster client for `nodes` whose own commands while connecting are
    /// bounded by `limit`. Connecting a cluster connection (`get_connection`)
    /// runs commands of its own (each seed's `PING`, `CLUSTER SLOTS`, a `PING`
    /// to each node) before `Conn::set_timeouts` can apply: without a response
    /// timeout a node that stalls after accepting blocks the caller for ever.
    /// Each connect is bounded by `limit` (at most the connect timeout), each
    /// reply by `limit`.
    fn cluster_client(
        &self,
        nodes: &[ConnectionInfo],
        limit: Duration,
    ) -> RedisResult<redis::cluster::ClusterClient> {
        let limit = limit.max(Duration::from_micros(1));
        redis::cluster::ClusterClient::builder(nodes.to_vec())
            .connection_timeout(self.connect_timeout.min(limit))
            .response_timeout(limit)
            // One retry: enough to follow a MOVED redirect; each try gets half
            // of what is left of the deadline (`Conn::set_timeouts`).
            .retries(1)
            .min_retry_wait(0)
            .max_retry_wait(self.cluster_retry_wait)
            .build()
    }

    /// A new connection, made within `limit`; an error if no name has
    /// resolved yet.
    pub(super) fn connect(&self, stats: &AtomicStats, limit: Duration) -> RedisResult<Conn> {
        let Some(backend) = self
            .backend
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Err(RedisError::from((
                ErrorKind::IoError,
                "the Redis host name has not resolved yet",
            )));
        };
        if limit.is_zero() {
            return Err(timed_out());
        }
        bump(&stats.connects);
        Ok(match &backend.1 {
            Backend::Single(client) => Conn::Single(client.get_connection_with_timeout(limit)?),
            Backend::Cluster => {
                Conn::Cluster(self.cluster_client(&backend.0, limit)?.get_connection()?)
            }
        })
    }

    /// Runs `f` on a pooled (or new) connection, under the breaker, within
    /// `limit` in all. A connection that saw an error is dropped (its state is
    /// unknown), never pooled again; if a pooled one turns out closed by the
    /// server, `f` runs once more on a new connection (same deadline).
    pub(super) fn call<T>(
        &self,
        stats: &AtomicStats,
        limit: Duration,
        f: impl FnMut(&mut Call<'_>) -> RedisResult<T>,
    ) -> Result<T, Failure> {
        let Some(permit) = self.breaker.admit() else {
            bump(&stats.skipped);
            return Err(Failure::Skipped);
        };
        self.call_with(permit, stats, limit, f)
    }

    /// The breaker's probe, for a background thread (never a handshake): if the
    /// breaker is open and its back-off has passed, `PING` within `limit`.
    /// `None` if no probe was due; else whether Redis answered (which closes it).
    pub(super) fn probe(&self, stats: &AtomicStats, limit: Duration) -> Option<bool> {
        self.probe_with(stats, limit, |c| {
            c.query::<String>(&redis::cmd("PING")).map(drop)
        })
    }

    /// [`probe`](Self::probe) with another call than `PING` (tests).
    pub(super) fn probe_with(
        &self,
        stats: &AtomicStats,
        limit: Duration,
        f: impl FnMut(&mut Call<'_>) -> RedisResult<()>,
    ) -> Option<bool> {
        let permit = self.breaker.admit_probe()?;
        Some(self.call_with(permit, stats, limit, f).is_ok())
    }

    fn call_with<T>(
        &self,
        permit: super::breaker::Permit<'_>,
        stats: &AtomicStats,
        limit: Duration,
        mut f: impl FnMut(&mut Call<'_>) -> RedisResult<T>,
    ) -> Result<T, Failure> {
        let deadline = instant_after(limit);
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let was_pooled = pooled.is_some();
        let mut run = |conn: Option<Conn>| {
            match conn {
                Some(c) => Ok(c),
                None => self.connect(
                    stats,
                    self.connect_timeout
                        .min(deadline.saturating_duration_since(Instant::now())),
                ),
            }
            .and_then(|mut conn| {
                let v = f(&mut Call {
                    conn: &mut conn,
                    deadline,
                })?;
                Ok((v, conn))
            })
        };
        let result = match run(pooled) {
            // An idle connection the server closed (it restarted, or timed the
            // client out): once more on a new connection, within the deadline.
            Err(e) if was_pooled && e.is_connection_dropped() => run(None),
            other => other,
        };
        match result {
            Ok((v, conn)) => {
                permit.success();
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < self.pool_size {
                    pool.push(conn);
                }
                Ok(v)
            }
            Err(e) => {
                count_error(stats, &e);
                if permit.failure() {
                    bump(&stats.breaker_trips);
                    // Whatever is pooled went to the same failing server.
                    self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
                Err(Failure::Failed)
            }
        }
    }
}

pub(super) fn count_error(stats: &AtomicStats, e: &RedisError) {
    if e.is_timeout() {
        bump(&stats.timeouts);
    } else {
        bump(&stats.errors);
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A throwaway `redis-server` on a free 127.0.0.1 port (the integration tests
    /// have a fuller one in `tests/redis_support`).
    struct Server(Child, u16);

    impl Server {
        fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (apt-get install -y redis-server)");
            let server = Server(child, port);
            let client = redis::Client::open(server.url()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while client
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_err()
            {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.1)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A probe call that panics (a bug in a codec, in the client library) must
    /// not leave the breaker half-open forever: later calls get through again.
    #[test]
    fn a_panicking_probe_does_not_wedge_the_breaker() {
        let server = Server::start();
        let config = RedisConfig::new(server.url())
            .timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(1))
            .breaker(1, Duration::from_millis(10), Duration::from_millis(10));
        let link = Link::new(&config).unwrap();
        let stats = AtomicStats::default();
        let limit = Duration::from_secs(1);
        // One failure opens it.
        assert!(link
            .call(&stats, limit, |c| c
                .query::<()>(&redis::cmd("NO-SUCH-COMMAND")))
            .is_err());
        assert!(link.breaker.is_open());
        std::thread::sleep(Duration::from_millis(30));
        // Lookups are skipped while it is open, also after the back-off.
        assert!(matches!(
            link.call(&stats, limit, |c| c.query::<String>(&redis::cmd("PING"))),
            Err(Failure::Skipped)
        ));
        // The probe panics.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = link.probe_with(&stats, limit, |_| -> RedisResult<()> {
                panic!("a bug inside the probe")
            });
        }));
        assert!(panicked.is_err());
        // After the back-off, a probe runs again and closes it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(30));
            if link.probe(&stats, limit) == Some(true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the breaker stays wedged after a panicking probe"
            );
        }
        assert!(!link.breaker.is_open());
        assert!(link
            .call(&stats, limit, |c| c.query::<String>(&redis::cmd("PING")))
            .is_ok());
    }
}
