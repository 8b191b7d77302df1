//! The distributed mode's coordinator: leases and presence are Redis keys with a TTL,
//! fan-out is Redis pub/sub.
//!
//! Every key and channel starts with a namespace (`rivet` by default), so that several
//! deployments, or several tests, can share one Redis.

mod fanout;
mod scripts;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Config, Connection, Pool, PoolConfig, Runtime, Timeouts};
use futures_util::stream::BoxStream;
use rivet_core::Assignment;
use uuid::Uuid;

use self::fanout::Fanout;
use self::scripts::Scripts;
use super::channel::Limits;
use crate::domain::coord::{CoordError, CoordResult, Coordinator, FanoutUsage, Topic};

/// How long a command may wait for a pooled connection, and for a new one to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How many keys one `SCAN` step looks at.
const SCAN_COUNT: usize = 500;

/// Coordinates replicas through Redis.
pub struct RedisCoordinator {
    pool: Pool,
    keys: Keys,
    scripts: Scripts,
    fanout: Fanout,
}

impl RedisCoordinator {
    /// The namespace of a deployment that does not choose one.
    pub const DEFAULT_NAMESPACE: &'static str = "rivet";

    /// Connects to the Redis at `url`, prefixing every key and channel with `namespace`.
    ///
    /// Fails when Redis can't be reached now; later outages fail single calls, and the
    /// pub/sub connection reconnects by itself.
    pub async fn connect(url: &str, namespace: &str) -> CoordResult<Self> {
        let client = redis::Client::open(url).map_err(failed("parse the redis url"))?;
        let mut config = Config::from_url(url);
        config.pool = Some(PoolConfig {
            timeouts: Timeouts { wait: Some(POOL_TIMEOUT), create: Some(POOL_TIMEOUT), recycle: Some(POOL_TIMEOUT) },
            ..PoolConfig::default()
        });
        let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(failed("create the redis pool"))?;

        let coordinator =
            Self { keys: Keys::new(namespace), scripts: Scripts::new(), fanout: Fanout::start(client).await?, pool };
        // Check the pool too, so that a bad URL or password shows up here and not on the
        // first lease.
        let mut conn = coordinator.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(failed("ping redis"))?;
        drop(conn);
        tracing::debug!(url, namespace, "connected to redis");
        Ok(coordinator)
    }

    async fn conn(&self) -> CoordResult<Connection> {
        self.pool.get().await.map_err(failed("get a redis connection"))
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    #[tracing::instrument(name = "redis.grant_lease", skip_all, fields(otel.kind = "client"))]
    async fn grant_lease(&self, assignment: Assignment, ttl: Duration) -> CoordResult<()> {
        let mut conn = self.conn().await?;
        let granted: bool = self
            .scripts
            .grant
            .key(self.keys.lease(assignment.job_id))
            .arg(assignment.epoch)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(failed("grant lease"))?;
        if !granted {
            tracing::debug!(%assignment, "newer epoch holds the lease");
        }
        Ok(())
    }

    #[tracing::instrument(name = "redis.renew_lease", skip_all, fields(otel.kind = "client"))]
    async fn renew_lease(&self, assignment: Assignment, ttl: Duration) -> CoordResult<bool> {
        let mut conn = self.conn().await?;
        self.scripts
            .renew
            .key(self.keys.lease(assignment.job_id))
            .arg(assignment.epoch)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(failed("renew lease"))
    }

    #[tracing::instrument(name = "redis.lease_held", skip_all, fields(otel.kind = "client"))]
    async fn lease_held(&self, assignment: Assignment) -> CoordResult<bool> {
        let mut conn = self.conn().await?;
        let epoch: Option<String> = conn.get(self.keys.lease(assignment.job_id)).await.map_err(failed("read lease"))?;
        Ok(epoch.is_some_and(|epoch| epoch == assignment.epoch.to_string()))
    }

    #[tracing::instrument(name = "redis.release_lease", skip_all, fields(otel.kind = "client"))]
    async fn release_lease(&self, assignment: Assignment) -> CoordResult<()> {
        let mut conn = self.conn().await?;
        self.scripts
            .delete_if_equal
            .key(self.keys.lease(assignment.job_id))
            .arg(assignment.epoch)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(failed("release lease"))
    }

    #[tracing::instrument(name = "redis.set_online", skip_all, fields(otel.kind = "client"))]
    async fn set_online(&self, runner: Uuid, replica: &str, ttl: Duration) -> CoordResult<()> {
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(self.keys.runner(runner))
            .arg(replica)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut conn)
            .await
            .map_err(failed("mark runner online"))
    }

    #[tracing::instrument(name = "redis.set_offline", skip_all, fields(otel.kind = "client"))]
    async fn set_offline(&self, runner: Uuid, replica: &str) -> CoordResult<()> {
        let mut conn = self.conn().await?;
        self.scripts
            .delete_if_equal
            .key(self.keys.runner(runner))
            .arg(replica)
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(failed("mark runner offline"))
    }

    #[tracing::instrument(name = "redis.online_runners", skip_all, fields(otel.kind = "client"))]
    async fn online_runners(&self) -> CoordResult<HashSet<Uuid>> {
        let mut conn = self.conn().await?;
        let pattern = self.keys.runner_pattern();
        let mut runners = HashSet::new();
        // SCAN rather than KEYS: it does not block Redis while it walks a large keyspace.
        // It may return a key twice, which the set absorbs.
        let mut cursor = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(failed("list online runners"))?;
            runners.extend(keys.iter().filter_map(|key| self.keys.parse_runner(key)));
            if next == 0 {
                return Ok(runners);
            }
            cursor = next;
        }
    }

    #[tracing::instrument(name = "redis.publish", skip_all, fields(otel.kind = "client"))]
    async fn publish(&self, topic: &Topic, payload: Bytes) -> CoordResult<()> {
        let mut conn = self.conn().await?;
        conn.publish::<_, _, ()>(self.keys.channel(topic), payload.as_ref()).await.map_err(failed("publish"))
    }

    #[tracing::instrument(name = "redis.subscribe", skip_all, fields(otel.kind = "client"))]
    async fn subscribe(&self, topic: &Topic) -> CoordResult<BoxStream<'static, Bytes>> {
        self.fanout.subscribe(self.keys.channel(topic), Limits::of(topic)).await
    }

    fn fanout_usage(&self) -> FanoutUsage {
        self.fanout.usage()
    }

    #[tracing::instrument(name = "redis.generation", skip_all, fields(otel.kind = "client"))]
    async fn generation(&self) -> CoordResult<String> {
        let mut conn = self.conn().await?;
        // A key without expiry: it is gone exactly when Redis lost (or was told to drop)
        // its data. Whichever replica notices first writes the next generation; the others
        // read it.
        self.scripts
            .generation
            .key(self.keys.generation())
            .arg(Uuid::new_v4().to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(failed("read the redis data generation"))
    }
}

/// The names of keys and channels in one namespace.
struct Keys {
    namespace: String,
}

impl Keys {
    fn new(namespace: &str) -> Self {
        Self { namespace: namespace.to_owned() }
    }

    fn lease(&self, job: Uuid) -> String {
        format!("{}:lease:{job}", self.namespace)
    }

    fn runner(&self, runner: Uuid) -> String {
        format!("{}:runner:{runner}", self.namespace)
    }

    /// The key whose value names the generation of this namespace's data.
    fn generation(&self) -> String {
        format!("{}:generation", self.namespace)
    }

    /// The `SCAN MATCH` pattern of every runner key; glob characters in the namespace are
    /// escaped so that they match only themselves.
    fn runner_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.namespace.len() + 9);
        for c in self.namespace.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":runner:*");
        pattern
    }

    fn parse_runner(&self, key: &str) -> Option<Uuid> {
        let id = key.strip_prefix(self.namespace.as_str())?.strip_prefix(":runner:")?;
        Uuid::parse_str(id).ok()
    }

    /// The topic's channel with the namespace in place of the default one.
    fn channel(&self, topic: &Topic) -> String {
        let channel = topic.channel();
        let name = channel
            .strip_prefix(RedisCoordinator::DEFAULT_NAMESPACE)
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(&channel);
        format!("{}:{name}", self.namespace)
    }
}

/// A TTL in whole milliseconds, at least one: Redis refuses a zero expiry.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Maps a Redis or pool error to [`CoordError::Unavailable`], saying what failed.
fn failed<E: fmt::Display>(what: &'static str) -> impl FnOnce(E) -> CoordError {
    move |error| CoordError::Unavailable(format!("failed to {what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_channels_are_namespaced() {
        let keys = Keys::new("ci-7");
        let id = Uuid::nil();
        assert_eq!(keys.lease(id), format!("ci-7:lease:{id}"));
        assert_eq!(keys.runner(id), format!("ci-7:runner:{id}"));
        assert_eq!(keys.generation(), "ci-7:generation");
        assert_eq!(keys.parse_runner(&keys.runner(id)), Some(id));
        assert_eq!(keys.parse_runner("ci-7:runner:junk"), None);
        assert_eq!(keys.parse_runner("other:runner:junk"), None);
        assert_eq!(keys.channel(&Topic::Dispatch), "ci-7:dispatch");
        assert_eq!(keys.channel(&Topic::JobLogs(id)), format!("ci-7:job:{id}:logs"));

        let default = Keys::new(RedisCoordinator::DEFAULT_NAMESPACE);
        assert_eq!(default.channel(&Topic::Runner(id)), Topic::Runner(id).channel());
    }

    #[test]
    fn glob_characters_in_the_namespace_are_escaped() {
        assert_eq!(Keys::new("a*b?[c]").runner_pattern(), r"a\*b\?\[c\]:runner:*");
    }

    #[test]
    fn ttls_are_whole_positive_milliseconds() {
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }
}
