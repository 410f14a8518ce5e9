//! The polling loop: fetch, emit, wait for the acks, advance the offset, back off.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use connector_sdk::{Accepted, BoxError, Clock, ConfigError, Context, EmitError};

use crate::api::{ApiError, BotApi};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::offset::OffsetFile;
use crate::updates::{Outcome, classify};

/// The first wait after a failure; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two failing polls.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How a batch of updates went.
enum Batch {
    /// Every update was acked or skipped: poll again at once.
    Done,
    /// The orchestrator refused one: back off, then fetch it again.
    Refused,
    /// Shutdown, or the channel to the orchestrator is gone.
    Stop,
}

/// Runs the Telegram connector on `ctx` until `shutdown`.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    let config = Config::parse(ctx.config(), ctx.secrets())?;
    let api = Arc::new(BotApi::new(&config)?);
    // Registered before ready: a call never finds the operation missing.
    crate::ops::register(&ctx, api.clone(), config.max_file_bytes);
    let store = OffsetFile::new(ctx.state_dir());
    let offset = store.load().unwrap_or_else(|e| {
        ctx.warn(format!("{e}; fetching every unconfirmed update"));
        None
    });
    ctx.ready().await;
    ctx.info(format!(
        "polling {} (timeout {}s) from offset {}",
        config.api_base,
        config.poll_timeout.as_secs(),
        offset.map_or_else(|| "none".to_owned(), |o| o.to_string()),
    ));
    let poller = Poller {
        clock: ctx.clock(),
        ctx,
        api,
        store,
        offset,
    };
    poller.run().await
}

struct Poller {
    ctx: Context,
    clock: Clock,
    api: Arc<BotApi>,
    store: OffsetFile,
    /// The next `getUpdates` offset: every update below it is acked (or skipped).
    offset: Option<i64>,
}

impl Poller {
    async fn run(mut self) -> Result<(), BoxError> {
        let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
        loop {
            let Some(got) = self.until_shutdown(self.api.get_updates(self.offset)).await else {
                return Ok(());
            };
            let wait = match got {
                Ok(updates) => match self.handle(updates).await {
                    Batch::Done => {
                        backoff.reset();
                        continue;
                    }
                    Batch::Stop => return Ok(()),
                    Batch::Refused => {
                        let wait = backoff.next_wait();
                        self.ctx.warn(format!(
                            "fetching again from offset {} in {wait:?}",
                            self.offset_text()
                        ));
                        wait
                    }
                },
                Err(ApiError::Http {
                    status: 429,
                    retry_after,
                    ..
                }) => {
                    let wait = retry_after.map_or_else(|| backoff.next_wait(), Duration::from_secs);
                    self.ctx.warn(format!(
                        "getUpdates: 429 Too Many Requests; retrying in {wait:?}"
                    ));
                    wait
                }
                Err(ApiError::Http {
                    status: 409,
                    description,
                    ..
                }) => {
                    let wait = backoff.next_wait();
                    self.ctx.warn(format!(
                        "getUpdates: 409 Conflict ({description}): another process polls this bot, \
                         or a webhook is set; retrying in {wait:?}"
                    ));
                    wait
                }
                Err(ApiError::Http {
                    status: status @ (401 | 404),
                    description,
                    ..
                }) => {
                    let e = format!(
                        "getUpdates: HTTP {status} ({description}): check the secret BOT_TOKEN \
                         and API_BASE"
                    );
                    self.ctx.error(&e);
                    return Err(ConfigError::new(e).into());
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    self.ctx
                        .warn(format!("getUpdates: {e}; retrying in {wait:?}"));
                    wait
                }
            };
            if self.until_shutdown(self.clock.sleep(wait)).await.is_none() {
                return Ok(());
            }
        }
    }

    /// Emits what the batch holds, waits for every answer, and moves the
    /// offset past the longest run of acked (or skipped) updates from its start.
    async fn handle(&mut self, updates: Vec<serde_json::Value>) -> Batch {
        let emitter = self.ctx.emitter();
        // Every emit is queued before the first answer is awaited.
        let mut pending = Vec::with_capacity(updates.len());
        for update in &updates {
            let c = classify(update);
            let id_text = c
                .update_id
                .map_or_else(|| "?".to_owned(), |i| i.to_string());
            let answer = match c.outcome {
                // classify() skips updates without an id: every emit has its key.
                Outcome::Emit(event) => {
                    Some(emitter.emit_with_key(event, format!("telegram:{id_text}")))
                }
                Outcome::Skip(why) => {
                    self.ctx.info(format!("update {id_text} skipped: {why}"));
                    None
                }
            };
            pending.push((c.update_id, id_text, answer));
        }
        let mut next = self.offset;
        let mut refused = false;
        for (id, id_text, answer) in pending {
            if let Some(answer) = answer {
                match self.until_shutdown(answer).await {
                    None | Some(Err(EmitError::Closed)) => return Batch::Stop,
                    Some(Ok(Accepted { .. })) => {}
                    Some(Err(e)) => {
                        if !refused {
                            self.ctx.warn(format!("update {id_text} not accepted: {e}"));
                        }
                        refused = true;
                    }
                }
            }
            if !refused && let Some(id) = id {
                next = Some(next.map_or(id + 1, |n| n.max(id + 1)));
            }
        }
        if next != self.offset {
            self.offset = next;
            if let Some(offset) = next
                && let Err(e) = self.store.store(offset).await
            {
                self.ctx
                    .error(format!("offset not stored, {e}: {}", e.source));
            }
        }
        if refused { Batch::Refused } else { Batch::Done }
    }

    fn offset_text(&self) -> String {
        self.offset
            .map_or_else(|| "none".to_owned(), |o| o.to_string())
    }

    /// `fut`'s output, or `None` when shutdown comes first.
    async fn until_shutdown<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            v = fut => Some(v),
            () = self.ctx.shutdown() => None,
        }
    }
}
