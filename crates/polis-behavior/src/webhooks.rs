//! A remote plugin's event handlers are webhooks: fire-and-forget, off the
//! simulation's path, with bounded retries and backoff.
//!
//! The host builds each delivery's request while the event happens (so it
//! carries the permission-filtered context of that moment) and queues it on
//! the plugin's own sender thread; the simulation goes on at once. The
//! sender tries a delivery up to [`WebhookConfig::attempts`] times, each
//! attempt bounded by the plugin's own timeout (`limits.timeout_ms`),
//! waiting `backoff_ms`, then twice that, and so on between attempts, and
//! asking the plugin's circuit breaker before each: once a webhook that is
//! down has opened it, later deliveries fail at once instead of waiting.
//! A full queue drops the event, counted and logged, so a webhook that is
//! down never holds memory or time the simulation needs. A plugin's
//! handler counters record each delivery's final outcome; its retries and
//! drops are counted beside them.
//!
//! What a webhook answers is ignored: a remote handler cannot change the
//! session, so the simulation's outcome never depends on whether, or when,
//! a delivery arrived.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use polis_core::policy::PolicyError;
use polis_runtime::Breaker;

use crate::context::{PluginInfo, Services};

/// How webhooks are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Tries per delivery, the first included. By default 3.
    pub attempts: u32,
    /// Milliseconds before the first retry; each later one waits twice the
    /// one before. By default 100.
    pub backoff_ms: u64,
    /// Deliveries a plugin may have waiting; past it an event is dropped.
    /// By default 1,024.
    pub queue: usize,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig { attempts: 3, backoff_ms: 100, queue: 1024 }
    }
}

/// Sends one delivery; called again for each retry.
pub type WebhookSend = Box<dyn Fn() -> Result<(), PolicyError> + Send>;

struct Delivery {
    event_type: String,
    send: WebhookSend,
}

/// Deliveries queued or being sent, and a signal when that count changes.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Pending {
    fn add(&self, n: isize) {
        if let Ok(mut count) = self.count.lock() {
            *count = count.saturating_add_signed(n);
            self.changed.notify_all();
        }
    }
}

/// One plugin's webhook sender: a bounded queue and the thread that
/// drains it. The thread ends when the queue's last sender is dropped.
pub(crate) struct Webhooks {
    queue: SyncSender<Delivery>,
    pending: Arc<Pending>,
    info: Arc<PluginInfo>,
    services: Arc<Services>,
    capacity: usize,
}

impl Webhooks {
    /// Starts the sender thread of the plugin `info` describes.
    pub(crate) fn start(
        info: Arc<PluginInfo>,
        breaker: Arc<Mutex<Breaker>>,
        services: Arc<Services>,
        config: WebhookConfig,
    ) -> std::io::Result<Webhooks> {
        let capacity = config.queue.max(1);
        let (queue, deliveries) = sync_channel(capacity);
        let pending = Arc::new(Pending::default());
        let sender = Sender {
            info: Arc::clone(&info),
            breaker,
            services: Arc::clone(&services),
            pending: Arc::clone(&pending),
            config,
        };
        std::thread::Builder::new()
            .name(format!("webhooks {}", info.plugin_id))
            .spawn(move || sender.run(&deliveries))?;
        Ok(Webhooks { queue, pending, info, services, capacity })
    }

    /// Queues a delivery of `event_type`; a full queue drops it, counted as
    /// a failed handler call.
    pub(crate) fn send(&self, event_type: &str, send: WebhookSend) {
        self.pending.add(1);
        let delivery = Delivery { event_type: event_type.to_owned(), send };
        if let Err(refused) = self.queue.try_send(delivery) {
            self.pending.add(-1);
            let why = match refused {
                TrySendError::Full(_) => format!("its queue of {} is full", self.capacity),
                TrySendError::Disconnected(_) => "its sender thread has stopped".to_owned(),
            };
            let message = format!("webhook dropped: {why}");
            self.services.log(
                "polis",
                "warn",
                &format!("plugin `{}`: event_handler `{event_type}`: {message}", self.info.plugin_id),
            );
            self.info.record(|h| {
                h.handler(false, 0);
                h.webhooks_dropped += 1;
                h.error("event_handler", event_type, message);
            });
        }
    }

    /// Waits up to `timeout` for every queued delivery to finish; returns
    /// how many have not.
    pub(crate) fn flush(&self, timeout: Duration) -> usize {
        let until = Instant::now() + timeout;
        let Ok(mut count) = self.pending.count.lock() else { return 0 };
        while *count > 0 {
            let now = Instant::now();
            if now >= until {
                break;
            }
            match self.pending.changed.wait_timeout(count, until - now) {
                Ok((next, _)) => count = next,
                Err(_) => return 0,
            }
        }
        *count
    }
}

/// The sender thread's side.
struct Sender {
    info: Arc<PluginInfo>,
    breaker: Arc<Mutex<Breaker>>,
    services: Arc<Services>,
    pending: Arc<Pending>,
    config: WebhookConfig,
}

impl Sender {
    fn run(self, deliveries: &Receiver<Delivery>) {
        while let Ok(delivery) = deliveries.recv() {
            self.deliver(&delivery);
            self.pending.add(-1);
        }
    }

    fn deliver(&self, delivery: &Delivery) {
        let started = Instant::now();
        let attempts = self.config.attempts.max(1);
        let mut result = Err(String::new());
        let mut tried = 0;
        while tried < attempts {
            if tried > 0 {
                let shift = (tried - 1).min(16);
                std::thread::sleep(Duration::from_millis(self.config.backoff_ms.saturating_mul(1 << shift)));
            }
            tried += 1;
            let admitted = self.breaker.lock().map_or(Ok(()), |mut b| b.admit(Instant::now()));
            if let Err(retry) = admitted {
                result = Err(format!("circuit breaker open; next trial in {} ms", retry.as_millis()));
                break;
            }
            let sent = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (delivery.send)())) {
                Ok(sent) => sent.map_err(|e| e.to_string()),
                Err(panic) => Err(format!("panicked: {}", polis_runtime::panic_message(&panic))),
            };
            if let Ok(mut breaker) = self.breaker.lock() {
                breaker.record(sent.is_ok(), Instant::now());
            }
            result = sent;
            if result.is_ok() {
                break;
            }
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let event_type = delivery.event_type.as_str();
        self.info.record(|h| {
            h.handler(result.is_ok(), micros);
            h.webhook_retries += u64::from(tried - 1);
        });
        if let Err(error) = result {
            let message = format!("webhook failed after {tried} of {attempts} attempts: {error}");
            self.services.log(
                "polis",
                "warn",
                &format!("plugin `{}`: event_handler `{event_type}` failed: {message}", self.info.plugin_id),
            );
            self.info.record(|h| h.error("event_handler", event_type, message));
        }
    }
}
