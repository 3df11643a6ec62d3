//! A sink that never blocks: `emit` puts the event in a bounded queue (or counts it as
//! dropped when the queue is full), and a task delivers the queue in batches — a batch is
//! sent when it is full or when its first event has waited the flush interval. Closing
//! delivers what is queued and stops. Every sink of the action log (the database and the
//! streaming ones) is one of these around its own [`Deliver`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bulwark_events::{Event, EventSink};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where a batch goes.
#[async_trait::async_trait]
pub trait Deliver: Send + 'static {
    /// Delivers `batch`, retrying as the destination warrants; returns how many events were
    /// given up. `closing` is set for the batches delivered while the registry stops, when
    /// a destination that does not answer must not hold the shutdown for long.
    async fn deliver(&mut self, batch: Vec<Event>, closing: bool) -> u64;
}

#[async_trait::async_trait]
impl Deliver for Box<dyn Deliver> {
    async fn deliver(&mut self, batch: Vec<Event>, closing: bool) -> u64 {
        (**self).deliver(batch, closing).await
    }
}

#[derive(Clone, Copy, Debug)]
pub struct BufferSettings {
    /// Events held in memory waiting for delivery; beyond it they are dropped and counted.
    pub capacity: usize,
    /// Most events per batch.
    pub batch: usize,
    /// Longest an event waits before its batch goes.
    pub flush_interval: Duration,
}

pub struct Buffered {
    name: &'static str,
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Buffered {
    /// Starts the delivery task of sink `name` (the label of its metrics).
    pub fn start(
        name: &'static str,
        settings: BufferSettings,
        deliver: impl Deliver,
    ) -> Arc<Buffered> {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(name, settings, rx, stop_rx, dropped.clone(), deliver));
        Arc::new(Buffered {
            name,
            tx,
            dropped,
            stop: Mutex::new(Some((stop_tx, task))),
        })
    }

    /// Events dropped so far: refused by a full queue, or given up by the destination.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Delivers what is queued and stops; events emitted afterwards are dropped.
    pub async fn close(&self) {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, task)) = stop {
            let _ = stop.send(());
            if let Err(e) = task.await {
                tracing::error!(sink = self.name, error = %e, "action log sink task failed");
            }
        }
    }
}

impl EventSink for Buffered {
    fn emit(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            count_dropped(self.name, &self.dropped, 1);
        }
    }
}

fn count_dropped(name: &'static str, dropped: &AtomicU64, n: u64) {
    dropped.fetch_add(n, Ordering::Relaxed);
    metrics::counter!("bulwark_audit_dropped_events_total", "sink" => name).increment(n);
}

async fn run(
    name: &'static str,
    settings: BufferSettings,
    mut rx: mpsc::Receiver<Event>,
    mut stop: oneshot::Receiver<()>,
    dropped: Arc<AtomicU64>,
    mut deliver: impl Deliver,
) {
    let max = settings.batch.max(1);
    let mut batch = Vec::with_capacity(max);
    let mut reported = 0;
    let mut stopping = false;
    while !stopping {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            n = rx.recv_many(&mut batch, max) => if n == 0 { break },
        }
        let deadline = Instant::now() + settings.flush_interval;
        while batch.len() < max {
            let room = max - batch.len();
            tokio::select! {
                biased;
                _ = &mut stop => { stopping = true; break },
                _ = tokio::time::sleep_until(deadline) => break,
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
            }
        }
        let lost = deliver.deliver(std::mem::take(&mut batch), false).await;
        if lost > 0 {
            count_dropped(name, &dropped, lost);
        }
        report(name, &dropped, &mut reported);
    }
    // Closing: refuse new events, deliver what is queued.
    rx.close();
    while let Some(event) = rx.recv().await {
        batch.push(event);
        if batch.len() == max {
            let lost = deliver.deliver(std::mem::take(&mut batch), true).await;
            count_dropped(name, &dropped, lost);
        }
    }
    if !batch.is_empty() {
        let lost = deliver.deliver(batch, true).await;
        count_dropped(name, &dropped, lost);
    }
    report(name, &dropped, &mut reported);
}

/// Logs drops since the last report, so that an operator sees them without the metrics.
fn report(name: &'static str, dropped: &AtomicU64, reported: &mut u64) {
    let now = dropped.load(Ordering::Relaxed);
    if now > *reported {
        tracing::warn!(
            sink = name,
            dropped = now - *reported,
            total = now,
            "the action log dropped events (queue full or destination failing)"
        );
        *reported = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_events::{Actor, Origin};

    /// Records batches; optionally waits on a gate before each.
    struct Recorder {
        batches: Arc<Mutex<Vec<(usize, bool)>>>,
        gate: Option<Arc<tokio::sync::Semaphore>>,
    }

    #[async_trait::async_trait]
    impl Deliver for Recorder {
        async fn deliver(&mut self, batch: Vec<Event>, closing: bool) -> u64 {
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            self.batches.lock().unwrap().push((batch.len(), closing));
            0
        }
    }

    fn event() -> Event {
        Event::new("pull", Actor::anonymous(), Origin::default())
    }

    #[tokio::test]
    async fn batches_fill_or_wait_the_flush_interval_and_close_delivers_the_rest() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let settings = BufferSettings {
            capacity: 1000,
            batch: 10,
            flush_interval: Duration::from_millis(50),
        };
        let sink = Buffered::start(
            "test",
            settings,
            Recorder {
                batches: batches.clone(),
                gate: None,
            },
        );
        for _ in 0..25 {
            sink.emit(event());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sizes: Vec<usize> = batches.lock().unwrap().iter().map(|b| b.0).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 25, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
        sink.emit(event());
        sink.close().await;
        assert_eq!(batches.lock().unwrap().last(), Some(&(1, true)));
        sink.emit(event());
        assert_eq!(
            sink.dropped(),
            1,
            "events after close are dropped and counted"
        );
    }

    #[tokio::test]
    async fn a_stuck_destination_drops_and_counts_without_blocking() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let settings = BufferSettings {
            capacity: 100,
            batch: 10,
            flush_interval: Duration::from_millis(10),
        };
        let sink = Buffered::start(
            "test",
            settings,
            Recorder {
                batches: batches.clone(),
                gate: Some(gate.clone()),
            },
        );
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            sink.emit(event());
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "emit never waits"
        );
        // At most the queue and the batch in hand are kept.
        assert!(sink.dropped() >= 10_000 - 110, "{}", sink.dropped());
        gate.add_permits(10_000);
        sink.close().await;
        let delivered: usize = batches.lock().unwrap().iter().map(|b| b.0).sum();
        assert_eq!(delivered as u64 + sink.dropped(), 10_000);
    }
}
