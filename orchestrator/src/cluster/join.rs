//! Joining the cluster: connecting, setting up the streams and buckets, and
//! the checks a node passes before it takes part (its name, its clock, its
//! bundle), then its heartbeat and the list of live nodes.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::{Cluster, ClusterError, ClusterOptions, Inner, Names, Publisher};

/// The most a node's clock may differ from the NATS server's.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(2);

fn check_name(what: &'static str, value: &str) -> Result<(), ClusterError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::BadName {
            what,
            value: value.to_string(),
        })
    }
}

fn setup_err(what: impl Into<String>, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Setup {
        what: what.into(),
        message: e.to_string(),
    }
}

impl Cluster {
    /// Connects, creates (or opens) the streams and buckets, and checks that
    /// this node may join: its name is free, its clock agrees with NATS, and
    /// every live node runs the same bundle.
    pub async fn join(opts: ClusterOptions, bundle_hash: String) -> Result<Self, ClusterError> {
        check_name("--cluster-name", &opts.name)?;
        check_name("--node", &opts.node)?;
        let mut addrs = Vec::new();
        for url in &opts.urls {
            let addr =
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|source| ClusterError::BadUrl {
                        url: url.clone(),
                        source,
                    })?;
            addrs.push(addr);
        }
        // Messages pulled through a connection that broke (or dropped for
        // a slow subscriber) are lost to the client while the server counts
        // them delivered: each such event makes the consumers start over.
        let interruptions = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let told = interruptions.clone();
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                if matches!(
                    event,
                    async_nats::Event::Connected | async_nats::Event::SlowConsumer(_)
                ) {
                    told.send_modify(|n| *n += 1);
                }
                std::future::ready(())
            })
            .name(format!("orchestrator {}/{}", opts.name, opts.node))
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs)
            .await
            .map_err(|source| ClusterError::Connect {
                urls: opts.urls.join(","),
                source,
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(65_536)
            // Never wait for a permit inside the publishing task (it also
            // drives the acks that free them): a full window is an error,
            // which the connector gets as a `transient` nack.
            .backpressure_on_inflight(false)
            .build(client.clone());
        let names = Names {
            cluster: opts.name.clone(),
        };
        let replicas = replicas(&client);
        let kv_config = |bucket: String, max_age: Duration| kv::Config {
            bucket,
            history: 1,
            max_age,
            num_replicas: replicas,
            ..Default::default()
        };
        // Creating a replicated stream elects its group's leader, which
        // takes seconds on a busy NATS cluster: a longer deadline here, and
        // every stream and bucket at once.
        let mut setup = js.clone();
        setup.set_timeout(Duration::from_secs(20));
        let name = &opts.name;
        let status_ttl = opts.lease_ttl.max(Duration::from_secs(3));
        let keep = opts.keep_results;
        let events = stream::Config {
            name: names.events_stream(),
            subjects: vec![format!("{name}.events.*")],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            // A byte limit would be reserved up front on every server;
            // the message count bounds it (with each event's size cap).
            max_messages: 10_000_000,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let dlq = stream::Config {
            name: names.dlq_stream(),
            subjects: vec![names.dlq_subject()],
            max_messages: 1_000_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
            num_replicas: replicas,
            ..Default::default()
        };
        let (buckets, streams) = tokio::join!(
            futures::future::try_join_all([
                open_kv(&setup, kv_config(format!("{name}-meta"), Duration::ZERO)),
                open_kv(&setup, kv_config(format!("{name}-nodes"), opts.lease_ttl)),
                open_kv(&setup, kv_config(format!("{name}-leases"), opts.lease_ttl)),
                open_kv(&setup, kv_config(format!("{name}-status"), status_ttl)),
                open_kv(&setup, kv_config(format!("{name}-idempotency"), keep)),
                open_kv(&setup, kv_config(format!("{name}-jobs"), keep)),
            ]),
            futures::future::try_join(ensure_stream(&setup, events), ensure_stream(&setup, dlq)),
        );
        streams?;
        let [meta, nodes, leases, status, results, jobs]: [kv::Store; 6] = buckets?
            .try_into()
            .map_err(|_| setup_err("the buckets", "not all were opened"))?;
        let partitions = agree_on_partitions(&meta, opts.partitions).await?;
        let publisher = Publisher::start(js.clone());
        let inner = Inner {
            opts,
            names,
            client,
            js,
            meta,
            nodes,
            leases,
            status,
            results,
            jobs,
            partitions,
            bundle_hash,
            publisher,
            bad_messages: AtomicU64::new(0),
            serving: Default::default(),
            interruptions,
        };
        let cluster = Self {
            inner: Arc::new(inner),
        };
        // A bucket just created on a NATS cluster may not take writes for a
        // moment ("no stream found"): only such trouble is tried again, not
        // a refusal (another bundle, a clock off, a name taken).
        let setup_only = |r: Result<(), ClusterError>| match r {
            Err(ClusterError::Setup { message, .. }) => Err(message),
            other => Ok(other),
        };
        patiently("the node list", || async {
            setup_only(cluster.check_peers().await)
        })
        .await??;
        patiently("the node heartbeat", || async {
            setup_only(cluster.heartbeat().await)
        })
        .await??;
        Ok(cluster)
    }

    /// Writes this node's heartbeat (its bundle hash), and checks the clock against NATS's.
    pub(super) async fn heartbeat(&self) -> Result<(), ClusterError> {
        let i = &self.inner;
        let body = serde_json::json!({ "bundle": i.bundle_hash }).to_string();
        i.nodes
            .put(&i.opts.node, body.into())
            .await
            .map_err(|e| setup_err("the node heartbeat", e))?;
        if let Ok(Some(entry)) = i.nodes.entry(i.opts.node.clone()).await {
            let server_ms = entry.created.unix_timestamp_nanos() / 1_000_000;
            let local_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i128::try_from(d.as_millis()).unwrap_or(i128::MAX));
            let skew_ms = local_ms - server_ms;
            let max_ms = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
            if skew_ms.unsigned_abs() > u128::from(max_ms) {
                return Err(ClusterError::Clock { skew_ms, max_ms });
            }
        }
        Ok(())
    }

    /// Refuses to join when a live node runs another bundle or has this node's name.
    async fn check_peers(&self) -> Result<(), ClusterError> {
        let i = &self.inner;
        for (node, bundle) in self.live_nodes().await? {
            if node == i.opts.node {
                self.wait_out_namesake().await?;
                continue;
            }
            if bundle != i.bundle_hash {
                return Err(ClusterError::BundleDiffers {
                    node: i.opts.node.clone(),
                    ours: i.bundle_hash.clone(),
                    other: node,
                    theirs: bundle,
                    cluster: i.opts.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// A heartbeat under this node's name: the last run of this node (killed
    /// within the TTL) or another live node with the same name. The first
    /// expires within the TTL; the second keeps renewing it.
    async fn wait_out_namesake(&self) -> Result<(), ClusterError> {
        let i = &self.inner;
        let first = match i.nodes.entry(i.opts.node.clone()).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry.revision,
            _ => return Ok(()),
        };
        tracing::info!(
            "a heartbeat of node '{}' is still fresh: waiting up to {} for it to expire",
            i.opts.node,
            humantime::format_duration(i.opts.lease_ttl)
        );
        let until = tokio::time::Instant::now() + i.opts.lease_ttl + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(i.opts.lease_ttl / 10).await;
            match i.nodes.entry(i.opts.node.clone()).await {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                    if entry.revision != first {
                        return Err(ClusterError::NameTaken(i.opts.node.clone()));
                    }
                }
                _ => return Ok(()),
            }
        }
        Err(ClusterError::NameTaken(i.opts.node.clone()))
    }

    /// Every node with a fresh heartbeat, and the bundle hash it runs.
    pub(crate) async fn live_nodes(&self) -> Result<Vec<(String, String)>, ClusterError> {
        use futures::TryStreamExt;
        let i = &self.inner;
        let keys: Vec<String> = match i.nodes.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| setup_err("the node list", e))?,
            Err(e) => return Err(setup_err("the node list", e)),
        };
        let mut nodes = Vec::new();
        for key in keys {
            let Ok(Some(value)) = i.nodes.get(key.clone()).await else {
                continue;
            };
            let bundle = serde_json::from_slice::<serde_json::Value>(&value)
                .ok()
                .and_then(|v| v.get("bundle").and_then(|b| b.as_str()).map(String::from))
                .unwrap_or_default();
            nodes.push((key, bundle));
        }
        Ok(nodes)
    }
}

/// Replicas for the streams and buckets: 3 on a NATS cluster (which needs
/// three servers for them), 1 on a lone server. Not taken from the servers
/// the client has heard of so far (`connect_urls`): that list is still
/// filling in right after connecting, and a bucket made with too few
/// replicas would not survive the loss of its server.
fn replicas(client: &async_nats::Client) -> usize {
    if client.server_info().cluster.is_some() {
        3
    } else {
        1
    }
}

/// How long setting up a stream or bucket keeps trying: nodes started
/// together against a NATS cluster that is still electing its leaders see
/// timeouts and "no suitable peers" for a while.
const SETUP_PATIENCE: Duration = Duration::from_secs(45);

/// Runs `attempt` until it succeeds or [`SETUP_PATIENCE`] is spent, with
/// backon's exponential delays (100 ms doubling, at most 2 s) in between.
async fn patiently<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    attempt: F,
) -> Result<T, ClusterError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    use backon::BackoffBuilder;
    let until = tokio::time::Instant::now() + SETUP_PATIENCE;
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .build();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                if tokio::time::Instant::now() + delay > until {
                    return Err(setup_err(what, e));
                }
                tracing::info!("NATS JetStream: {what}: {e}; trying again");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn open_kv(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, ClusterError> {
    let what = format!("bucket {}", config.bucket);
    patiently(&what, || js.create_or_update_key_value(config.clone())).await
}

async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<(), ClusterError> {
    let what = format!("stream {}", config.name);
    patiently(&what, || js.create_or_update_stream(config.clone()))
        .await
        .map(|_| ())
}

/// The partition count: the one stored for this cluster name, or `wanted` for a new cluster.
async fn agree_on_partitions(meta: &kv::Store, wanted: u32) -> Result<u32, ClusterError> {
    let value = wanted.to_string();
    let created = patiently("the partition count", || async {
        match meta.create("partitions", value.clone().into()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await?;
    if created {
        return Ok(wanted);
    }
    let stored = patiently("the partition count", || meta.get("partitions"))
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| setup_err("the partition count", "the stored value is not a number"))?;
    if stored != wanted {
        tracing::warn!(
            "--partitions {wanted} ignored: the cluster was created with {stored} partitions"
        );
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("--node", "node-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a*", &"x".repeat(65)] {
            let e = check_name("--node", bad).unwrap_err().to_string();
            assert!(e.contains("--node"), "{e}");
        }
    }
}
