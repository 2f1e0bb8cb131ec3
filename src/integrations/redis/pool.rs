//! Connections to Redis: the backend (one server or a cluster), the pool of idle
//! connections and [`Link::call`], every call under the breaker.

use super::breaker::Breaker;
use super::config::{RedisConfig, Target};
use super::stats::{bump, AtomicStats};
use redis::{ConnectionLike, RedisError, RedisResult};
use std::sync::Mutex;

enum Backend {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

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
}

/// Why a call to Redis gave no answer.
pub(super) enum Failure {
    /// The breaker is open: not tried.
    Skipped,
    /// Tried and failed (already counted).
    Failed,
}

/// The backend, its pool of idle connections and the breaker.
pub(super) struct Link {
    backend: Backend,
    pool: Mutex<Vec<Conn>>,
    pool_size: usize,
    timeout: std::time::Duration,
    connect_timeout: std::time::Duration,
    pub(super) breaker: Breaker,
}

impl Link {
    pub(super) fn new(config: &RedisConfig) -> RedisResult<Self> {
        let backend = match &config.target {
            Target::Single(url) => Backend::Single(redis::Client::open(url.as_str())?),
            Target::Cluster(nodes) => {
                let wait = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
                Backend::Cluster(
                    redis::cluster::ClusterClient::builder(nodes.clone())
                        .connection_timeout(config.connect_timeout)
                        .response_timeout(config.timeout)
                        // One retry: enough to follow a MOVED redirect, and bounded.
                        .retries(1)
                        .min_retry_wait(0)
                        .max_retry_wait(wait)
                        .build()?,
                )
            }
        };
        Ok(Link {
            backend,
            pool: Mutex::new(Vec::new()),
            pool_size: config.pool_size,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            breaker: Breaker::new(
                config.breaker_threshold,
                config.breaker_backoff,
                config.breaker_max_backoff,
            ),
        })
    }

    fn connect(&self, stats: &AtomicStats) -> RedisResult<Conn> {
        bump(&stats.connects);
        let t = Some(self.timeout);
        Ok(match &self.backend {
            Backend::Single(client) => {
                let c = client.get_connection_with_timeout(self.connect_timeout)?;
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Conn::Single(c)
            }
            Backend::Cluster(client) => {
                let c = client.get_connection()?;
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Conn::Cluster(c)
            }
        })
    }

    /// Runs `f` on a pooled (or new) connection, under the breaker. A connection
    /// that saw an error is dropped (its state is unknown), never pooled again.
    pub(super) fn call<T>(
        &self,
        stats: &AtomicStats,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, Failure> {
        let Some(probe) = self.breaker.admit() else {
            bump(&stats.skipped);
            return Err(Failure::Skipped);
        };
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let result = match pooled {
            Some(c) => Ok(c),
            None => self.connect(stats),
        }
        .and_then(|mut conn| f(conn.as_dyn()).map(|v| (v, conn)));
        match result {
            Ok((v, conn)) => {
                self.breaker.success(probe);
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < self.pool_size {
                    pool.push(conn);
                }
                Ok(v)
            }
            Err(e) => {
                count_error(stats, &e);
                if self.breaker.failure(probe) {
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
