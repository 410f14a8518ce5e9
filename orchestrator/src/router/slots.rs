//! `maxInstances`: how many processes of one Agent may run at once, and who
//! makes room when the limit is reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a waiting instance asks again for an idle sibling to stop.
const RETRY_EVICT: Duration = Duration::from_millis(100);

/// What the router and the other instances of the same Agent know about one instance.
#[derive(Debug)]
pub struct InstanceShared {
    /// When it last got or finished work.
    pub last_used: Mutex<Instant>,
    /// Its process runs and has nothing queued or in flight.
    pub idle: AtomicBool,
    /// Asked to stop its idle process to make room.
    pub evict: Notify,
}

impl Default for InstanceShared {
    fn default() -> Self {
        Self {
            last_used: Mutex::new(Instant::now()),
            idle: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }
}

impl InstanceShared {
    /// Marks it used now.
    pub fn touch(&self) {
        *self.last_used.lock().expect("instance lock") = Instant::now();
    }
}

/// The running-process slots of one Agent.
#[derive(Debug, Default)]
pub struct AgentSlots {
    permits: Option<Arc<Semaphore>>,
    instances: Mutex<Vec<Arc<InstanceShared>>>,
}

impl AgentSlots {
    /// Slots for at most `max` running processes (`None`: no limit).
    pub fn new(max: Option<u32>) -> Self {
        Self {
            permits: max.map(|m| Arc::new(Semaphore::new(m.max(1) as usize))),
            instances: Mutex::default(),
        }
    }

    /// Registers an instance, so it can be asked to make room.
    pub fn add(&self, instance: Arc<InstanceShared>) {
        self.instances.lock().expect("slots lock").push(instance);
    }

    /// Forgets an instance that is removed.
    pub fn remove(&self, instance: &Arc<InstanceShared>) {
        self.instances
            .lock()
            .expect("slots lock")
            .retain(|i| !Arc::ptr_eq(i, instance));
    }

    /// Waits for a slot for `me`, asking the least recently used idle sibling
    /// to stop while none is free. `Ok(None)` when there is no limit; `Err`
    /// when stopped meanwhile.
    pub async fn acquire(
        &self,
        me: &Arc<InstanceShared>,
        stop: &CancellationToken,
    ) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let Some(sem) = &self.permits else {
            return Ok(None);
        };
        loop {
            if let Ok(permit) = sem.clone().try_acquire_owned() {
                return Ok(Some(permit));
            }
            self.evict_lru(me);
            tokio::select! {
                permit = sem.clone().acquire_owned() => return permit.map(Some).map_err(|_| ()),
                _ = tokio::time::sleep(RETRY_EVICT) => {}
                _ = stop.cancelled() => return Err(()),
            }
        }
    }

    /// Asks the least recently used idle instance other than `me` to stop its process.
    fn evict_lru(&self, me: &Arc<InstanceShared>) {
        let instances = self.instances.lock().expect("slots lock");
        let lru = instances
            .iter()
            .filter(|i| !Arc::ptr_eq(i, me) && i.idle.load(Ordering::Relaxed))
            .min_by_key(|i| *i.last_used.lock().expect("instance lock"));
        if let Some(lru) = lru {
            lru.evict.notify_one();
        }
    }
}
