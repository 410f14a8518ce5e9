//! Invokes across nodes: an agent (or the operator) on one node invokes an
//! operation of a Connection that runs on another. The node that runs it
//! serves `N.invoke.<connection>` (a queue group, so one of several
//! `placement: every` nodes answers) and governs the call there, where the
//! Connection's limits live; the asking node waits for the answer.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipc_proto::{FailureClass, Invoke, InvokeError, InvokeResult};
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::operations::{Caller, Operations};

/// How long a forwarded invoke waits when it names no timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// A forwarded invoke, as it crosses NATS.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Forwarded {
    agent: String,
    instance_key: String,
    swarm: String,
    correlation_id: Option<String>,
    operator: bool,
    invoke: Invoke,
}

fn failed(id: String, class: FailureClass, message: String) -> InvokeResult {
    InvokeResult {
        id,
        ok: false,
        response: None,
        error: Some(InvokeError {
            class,
            message,
            retry_after_ms: None,
            provider_status: None,
            attempts: 0,
        }),
        job: None,
    }
}

impl Cluster {
    fn invoke_subject(&self, connection: &str) -> String {
        format!("{}.invoke.{connection}", self.inner.opts.name)
    }

    /// Whether Connection `name` runs on this node now.
    pub fn serves(&self, name: &str) -> bool {
        self.inner
            .serving
            .lock()
            .expect("cluster lock")
            .contains_key(name)
    }

    /// Runs `invoke` on the node that runs its Connection, and answers as it does.
    pub async fn forward_invoke(&self, caller: &Caller, invoke: Invoke) -> InvokeResult {
        let id = invoke.id.clone();
        let connection = invoke.connection.clone();
        let wait = invoke.timeout_ms.map_or(DEFAULT_WAIT, |ms| {
            Duration::from_millis(ms) + Duration::from_secs(5)
        });
        let forwarded = Forwarded {
            agent: caller.agent.clone(),
            instance_key: caller.instance_key.clone(),
            swarm: caller.swarm.clone(),
            correlation_id: caller.correlation_id.clone(),
            operator: caller.operator,
            invoke,
        };
        let body = match serde_json::to_vec(&forwarded) {
            Ok(b) => b,
            Err(e) => return failed(id, FailureClass::Permanent, e.to_string()),
        };
        let request = self
            .inner
            .client
            .request(self.invoke_subject(&connection), body.into());
        let answer = match tokio::time::timeout(wait, request).await {
            Err(_) => {
                let m = format!(
                    "Connection/{connection} did not answer within {}",
                    humantime::format_duration(wait)
                );
                return failed(id, FailureClass::Timeout, m);
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                let m = format!("Connection/{connection} runs on no live node now");
                return failed(id, FailureClass::Unavailable, m);
            }
            Ok(Err(e)) => {
                let m = format!(
                    "Connection/{connection}: the cluster could not forward the invoke: {e}"
                );
                return failed(id, FailureClass::Transient, m);
            }
            Ok(Ok(msg)) => msg,
        };
        serde_json::from_slice::<InvokeResult>(&answer.payload).unwrap_or_else(|e| {
            let m = format!("Connection/{connection}: unreadable answer from its node: {e}");
            failed(id, FailureClass::Transient, m)
        })
    }

    /// Serves invokes of Connection `name` here until [`stop_serving`](Self::stop_serving).
    pub fn serve(&self, name: &str, operations: Arc<Operations>) {
        let stop = CancellationToken::new();
        {
            let mut serving = self.inner.serving.lock().expect("cluster lock");
            if serving.contains_key(name) {
                return;
            }
            serving.insert(name.to_string(), stop.clone());
        }
        let (client, subject) = (self.inner.client.clone(), self.invoke_subject(name));
        let name = name.to_string();
        tokio::spawn(async move {
            let mut sub = match client.queue_subscribe(subject, "serve".into()).await {
                Ok(sub) => sub,
                Err(e) => {
                    tracing::error!(connection = %name, "cluster: cannot serve its invokes: {e}");
                    return;
                }
            };
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => break,
                    msg = sub.next() => match msg { Some(m) => m, None => break },
                };
                let Some(reply) = msg.reply.clone() else {
                    continue;
                };
                let (client, operations) = (client.clone(), operations.clone());
                tokio::spawn(async move {
                    let answer = match serde_json::from_slice::<Forwarded>(&msg.payload) {
                        Ok(f) => {
                            let caller = Caller {
                                agent: f.agent,
                                instance_key: f.instance_key,
                                swarm: f.swarm,
                                correlation_id: f.correlation_id,
                                operator: f.operator,
                            };
                            operations.invoke_here(&caller, f.invoke).await
                        }
                        Err(e) => failed(
                            String::new(),
                            FailureClass::Permanent,
                            format!("not a forwarded invoke: {e}"),
                        ),
                    };
                    let body = serde_json::to_vec(&answer).unwrap_or_default();
                    if let Err(e) = client.publish(reply, body.into()).await {
                        tracing::warn!("cluster: cannot answer a forwarded invoke: {e}");
                    }
                });
            }
            let _ = sub.unsubscribe().await;
        });
    }

    /// Stops serving invokes of Connection `name` (it moved away).
    pub fn stop_serving(&self, name: &str) {
        if let Some(stop) = self
            .inner
            .serving
            .lock()
            .expect("cluster lock")
            .remove(name)
        {
            stop.cancel();
        }
    }
}
