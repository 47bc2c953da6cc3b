//! Dynamic batching: concurrent requests to one model version merged into
//! one fresh instance and one `kiln_run(batch)`.
//!
//! Each version has a queue and a task draining it. The task takes the first
//! waiting request, waits for an execution slot (the version has
//! `concurrency` of them, so a model that loops until its deadline ties up
//! only its own slots), then takes whatever else is waiting — up to
//! `max_batch` rows, and for up to `max_queue_delay_us` after the first
//! request arrived — and runs the batch on a blocking thread. With a delay of
//! 0 (the default) nothing waits on purpose: batches form only from requests
//! that queued while the slots were busy, so an idle server adds no latency
//! and a loaded one amortises instantiation over many rows.
//!
//! With a delay of 0, a request that finds a free slot skips the queue and
//! its task altogether (one thread hand-off instead of two).
//!
//! A batch that fails for a reason other than its deadline is re-run one
//! request at a time, so a request whose rows make the module trap fails
//! alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::sandbox::{LoadedModule, Prediction, Sandbox, SandboxError};
use crate::serve::metrics::ModelMetrics;

/// What one request got back.
#[derive(Debug)]
pub struct Outcome {
    /// `rows * output_len` scores.
    pub scores: Vec<f32>,
    /// Time spent waiting in the queue.
    pub queue: Duration,
    /// Time of the `kiln_run` call this request was part of.
    pub compute: Duration,
    /// Rows in that call (this request's and others').
    pub batch_rows: usize,
}

/// Batching settings of one version.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub max_batch: usize,
    pub max_queue_delay: Duration,
    /// Calls of this version running at once.
    pub concurrency: usize,
}

struct Job {
    input: Vec<f32>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Outcome, SandboxError>>,
}

/// The queue of one version. Dropping it lets the task finish the requests
/// already queued, then end.
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    row_len: usize,
    /// Set when `max_queue_delay` is 0: what the direct path needs.
    direct: Option<Direct>,
}

struct Direct {
    sandbox: Arc<Sandbox>,
    module: Arc<LoadedModule>,
    metrics: Arc<ModelMetrics>,
    exec: Arc<Semaphore>,
}

/// Sent when the queue's task is gone (the runtime is shutting down).
fn gone() -> SandboxError {
    SandboxError::Trap("the model's queue closed (server shutting down)".into())
}

impl Batcher {
    /// Starts the queue's task on the current tokio runtime.
    pub fn spawn(
        sandbox: Arc<Sandbox>,
        module: Arc<LoadedModule>,
        settings: BatchSettings,
        metrics: Arc<ModelMetrics>,
    ) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let row_len = module.input_len();
        let exec = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let direct = settings.max_queue_delay.is_zero().then(|| Direct {
            sandbox: sandbox.clone(),
            module: module.clone(),
            metrics: metrics.clone(),
            exec: exec.clone(),
        });
        tokio::spawn(drain(rx, sandbox, module, settings, metrics, exec));
        Batcher {
            tx,
            row_len,
            direct,
        }
    }

    /// Queues `input` (whole rows) and waits for its scores.
    pub async fn submit(&self, input: Vec<f32>) -> Result<Outcome, SandboxError> {
        let rows = input.len() / self.row_len.max(1);
        let (reply, rx) = oneshot::channel();
        let job = Job {
            input,
            rows,
            enqueued: Instant::now(),
            reply,
        };
        let free = self
            .direct
            .as_ref()
            .and_then(|d| Some((d, d.exec.clone().try_acquire_owned().ok()?)));
        match free {
            Some((d, permit)) => {
                let (sandbox, module, metrics) =
                    (d.sandbox.clone(), d.module.clone(), d.metrics.clone());
                tokio::task::spawn_blocking(move || {
                    run_batch(&sandbox, &module, &metrics, vec![job]);
                    drop(permit);
                });
            }
            None => self.tx.send(job).map_err(|_| gone())?,
        }
        rx.await.map_err(|_| gone())?
    }
}

async fn drain(
    mut rx: mpsc::UnboundedReceiver<Job>,
    sandbox: Arc<Sandbox>,
    module: Arc<LoadedModule>,
    settings: BatchSettings,
    metrics: Arc<ModelMetrics>,
    exec: Arc<Semaphore>,
) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        let Ok(permit) = exec.clone().acquire_owned().await else {
            return;
        };
        let until = first.enqueued + settings.max_queue_delay;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < settings.max_batch {
            let next = match rx.try_recv() {
                Ok(j) => Some(j),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < until => {
                    tokio::time::timeout_at(until.into(), rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(mpsc::error::TryRecvError::Empty) => None,
            };
            let Some(job) = next else { break };
            if rows + job.rows > settings.max_batch {
                carry = Some(job);
                break;
            }
            rows += job.rows;
            jobs.push(job);
        }
        let (sandbox, module, metrics) = (sandbox.clone(), module.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || {
            run_batch(&sandbox, &module, &metrics, jobs);
            drop(permit);
        });
    }
}

fn run_batch(sandbox: &Sandbox, module: &LoadedModule, metrics: &ModelMetrics, jobs: Vec<Job>) {
    let started = Instant::now();
    let rows: usize = jobs.iter().map(|j| j.rows).sum();
    let result = if jobs.len() == 1 {
        sandbox.predict_measured(module, &jobs[0].input)
    } else {
        let input: Vec<f32> = jobs.iter().flat_map(|j| j.input.iter().copied()).collect();
        sandbox.predict_measured(module, &input)
    };
    metrics.record_execution(rows, &result);
    match result {
        Ok(p) => split(p, rows, started, jobs),
        Err(e) if jobs.len() == 1 || matches!(e, SandboxError::Deadline(_)) => {
            let message = e.to_string();
            let mut jobs = jobs.into_iter();
            if let Some(j) = jobs.next() {
                let _ = j.reply.send(Err(e));
            }
            for j in jobs {
                let _ = j.reply.send(Err(same_error(&message, module)));
            }
        }
        Err(_) => {
            // Re-run alone, so only the request that fails gets the error.
            for job in jobs {
                let started = Instant::now();
                let result = sandbox.predict_measured(module, &job.input);
                metrics.record_execution(job.rows, &result);
                match result {
                    Ok(p) => split(p, job.rows, started, vec![job]),
                    Err(e) => {
                        let _ = job.reply.send(Err(e));
                    }
                }
            }
        }
    }
}

/// The error of a shared batch, for every other request in it.
fn same_error(message: &str, module: &LoadedModule) -> SandboxError {
    if message.contains("deadline") {
        SandboxError::Deadline(module.limits().deadline)
    } else {
        SandboxError::Trap(message.into())
    }
}

fn split(p: Prediction, rows: usize, started: Instant, jobs: Vec<Job>) {
    let out_len = p.scores.len() / rows.max(1);
    let mut at = 0;
    for job in jobs {
        let n = job.rows * out_len;
        let scores = p.scores[at..at + n].to_vec();
        at += n;
        let _ = job.reply.send(Ok(Outcome {
            scores,
            queue: started.saturating_duration_since(job.enqueued),
            compute: p.instantiate + p.compute,
            batch_rows: rows,
        }));
    }
}
