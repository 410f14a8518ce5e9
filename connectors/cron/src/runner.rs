//! The connector's loop: catch up, sleep until the next slot, fire, persist.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_sdk::{BoxError, Clock, Context, EmitError, Event, NackKind};

use crate::config::{CatchUp, Config, MAX_CATCH_UP};
use crate::last_fire::{LastFire, rfc3339};

/// The first wait before retrying a refused tick, doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Whether the loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Runs the cron connector on `ctx` until `shutdown`.
pub async fn run(ctx: Context) -> Result<(), BoxError> {
    let cfg = Config::parse(ctx.config(), ctx.connection())?;
    let store = LastFire::new(ctx.state_dir());
    let last = store.load().unwrap_or_else(|e| {
        ctx.warn(format!("{e}; starting without catch-up"));
        None
    });
    ctx.ready().await;
    let ticker = Ticker {
        clock: ctx.clock(),
        ctx,
        cfg,
        store,
    };
    ticker.run(last).await;
    Ok(())
}

struct Ticker {
    ctx: Context,
    clock: Clock,
    cfg: Config,
    store: LastFire,
}

impl Ticker {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().into()
    }

    async fn run(&self, last: Option<DateTime<Utc>>) {
        let now = self.now();
        self.ctx.info(format!(
            "schedule {:?}{}, catch-up {}, last fired {}",
            self.cfg.schedule.describe(),
            match &self.cfg.schedule {
                crate::Schedule::Cron { tz, .. } => format!(" in {tz}"),
                crate::Schedule::Every { .. } => String::new(),
            },
            self.cfg.catch_up,
            last.map_or_else(|| "never".to_owned(), rfc3339),
        ));
        if let Some(last) = last
            && self.catch_up(last, now).await == Flow::Stop
        {
            return;
        }
        // A last_fire in the future (the clock was set back) is never fired again.
        let mut cursor = last.map_or(now, |l| l.max(now));
        loop {
            let Some(next) = self.cfg.schedule.next_after(cursor) else {
                self.ctx
                    .warn("the schedule has no further slots; idle until shutdown");
                self.ctx.shutdown().await;
                return;
            };
            tokio::select! {
                () = self.clock.sleep_until(next.into()) => {}
                () = self.ctx.shutdown() => return,
            }
            if self.fire(next, true).await == Flow::Stop {
                return;
            }
            let now = self.now();
            if self.catch_up(next, now).await == Flow::Stop {
                return;
            }
            cursor = next.max(now);
        }
    }

    /// Applies the catch-up policy to the slots in `(after, now]`.
    async fn catch_up(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Flow {
        let mut missed = self.cfg.schedule.slots_between(after, now, MAX_CATCH_UP);
        if missed.is_empty() {
            return Flow::Continue;
        }
        let more = missed.len() > MAX_CATCH_UP;
        let count = if more {
            format!("more than {MAX_CATCH_UP}")
        } else {
            missed.len().to_string()
        };
        let span = format!("after {} up to {}", rfc3339(after), rfc3339(now));
        match self.cfg.catch_up {
            CatchUp::Skip => {
                self.ctx.info(format!(
                    "skipped {count} missed slot(s) {span} (CATCH_UP skip)"
                ));
                Flow::Continue
            }
            CatchUp::Latest => {
                self.ctx.info(format!(
                    "{count} missed slot(s) {span}; firing the latest, {} (CATCH_UP latest)",
                    rfc3339(missed[0])
                ));
                self.fire(missed[0], false).await
            }
            CatchUp::All => {
                if more {
                    missed.truncate(MAX_CATCH_UP);
                    self.ctx.warn(format!(
                        "{count} missed slots {span}; firing only the latest {MAX_CATCH_UP} (CATCH_UP all)"
                    ));
                } else {
                    self.ctx.info(format!(
                        "firing {count} missed slot(s) {span} (CATCH_UP all)"
                    ));
                }
                for slot in missed.into_iter().rev() {
                    if self.fire(slot, false).await == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
        }
    }

    fn event(&self, slot: DateTime<Utc>) -> Event {
        let mut properties = BTreeMap::from([
            ("scheduled_at".to_owned(), rfc3339(slot)),
            ("schedule".to_owned(), self.cfg.schedule.describe()),
        ]);
        if let Some(name) = &self.cfg.name {
            properties.insert("name".to_owned(), name.clone());
        }
        Event {
            name: "tick".into(),
            message: None,
            properties,
            instance_key: Some(self.cfg.instance_key.clone()),
            payload: None,
        }
    }

    /// Emits the tick for `slot` and, once acked, remembers it. With
    /// `retry`, a refusal worth retrying is retried until the next slot is due.
    async fn fire(&self, slot: DateTime<Utc>, retry: bool) -> Flow {
        let key = format!("cron:{}", rfc3339(slot));
        let mut wait = RETRY_FIRST;
        loop {
            let emit = self
                .ctx
                .emitter()
                .emit_with_key(self.event(slot), key.clone());
            let answer = tokio::select! {
                a = emit => a,
                () = self.ctx.shutdown() => return Flow::Stop,
            };
            let refusal = match answer {
                Ok(_) => {
                    if let Err(e) = self.store.store(slot).await {
                        self.ctx
                            .error(format!("last fire not stored, {e}: {}", e.source));
                    }
                    return Flow::Continue;
                }
                Err(EmitError::Closed) => return Flow::Stop,
                Err(e) => e,
            };
            let worth_retrying = matches!(
                refusal,
                EmitError::Nacked {
                    kind: NackKind::Overloaded | NackKind::Transient | NackKind::QuotaExceeded,
                    ..
                }
            );
            let slot_text = rfc3339(slot);
            let retry_at = self.now() + wait;
            let superseded = self
                .cfg
                .schedule
                .next_after(slot)
                .is_none_or(|next| next <= retry_at);
            if !(retry && worth_retrying) || superseded {
                self.ctx.error(format!(
                    "tick for {slot_text} not accepted, given up: {refusal}"
                ));
                return Flow::Continue;
            }
            self.ctx.warn(format!(
                "tick for {slot_text} not accepted, retrying in {wait:?}: {refusal}"
            ));
            tokio::select! {
                () = self.clock.sleep(wait) => {}
                () = self.ctx.shutdown() => return Flow::Stop,
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}
