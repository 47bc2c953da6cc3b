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
//! Only requests of one principal (API key) share a batch, unless the
//! model's `batch_across_keys` allows it. A batch that fails (a trap, or its
//! deadline, which was the whole batch's) is re-run one request at a time,
//! each with its own deadline, so a request whose rows make the module trap
//! or loop fails alone.
//!
//! Admission: at most `max_queue` requests of a version wait to start; one
//! more is refused at once ([`InferError::QueueFull`]). A request that has
//! not started after `queue_timeout` gives up ([`InferError::QueueTimeout`]).
//! A request given up, or whose caller went away (its future dropped), is
//! never run: each job is claimed by exactly one of its runner and its
//! waiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::metrics::ModelMetrics;
use crate::sandbox::{LoadedModule, Prediction, Sandbox, SandboxError};

/// Who sent a request: the index of its API key, or anyone when the server
/// has no keys. Requests of different principals share no batch (unless the
/// model's `batch_across_keys` says so), so no module sees two callers'
/// rows in one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal(Option<usize>);

impl Principal {
    /// The caller of a server without keys.
    pub const ANYONE: Principal = Principal(None);
    /// The caller holding key number `index`.
    pub fn key(index: usize) -> Principal {
        Principal(Some(index))
    }
}

/// Why a request got no scores.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("the model's queue is full ({0} requests waiting); retry later")]
    QueueFull(usize),
    #[error("the request waited {0:?} in the model's queue without starting; retry later")]
    QueueTimeout(Duration),
    #[error("the model's queue closed (the model was unloaded or the server is shutting down)")]
    Closed,
    #[error("no answer within {0:?} (server.request_timeout_ms); retry later")]
    NoAnswer(Duration),
}

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
pub(super) struct BatchSettings {
    pub(super) max_batch: usize,
    pub(super) max_queue_delay: Duration,
    /// Calls of this version running at once.
    pub(super) concurrency: usize,
    /// Requests that may wait to start.
    pub(super) max_queue: usize,
    /// How long a request may wait to start.
    pub(super) queue_timeout: Duration,
    /// Whether requests of different principals may share a batch.
    pub(super) across_principals: bool,
}

/// A job's state: who claimed it.
const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

struct Job {
    input: Vec<f32>,
    rows: usize,
    principal: Principal,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Outcome, SandboxError>>,
    state: Arc<AtomicU8>,
}

impl Job {
    /// Whether the runner may run this job: its caller still waits and has
    /// not given up. Claiming it stops the caller from giving up.
    fn claim(&self) -> bool {
        !self.reply.is_closed()
            && self
                .state
                .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The queue of one version. Dropping it lets the task finish the requests
/// already queued, then end.
pub(super) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    row_len: usize,
    /// Jobs sent to the queue and not yet claimed or discarded by its task.
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    queue_timeout: Duration,
    /// Set when `max_queue_delay` is 0: what the direct path needs.
    direct: Option<Direct>,
}

struct Direct {
    sandbox: Arc<Sandbox>,
    module: Arc<LoadedModule>,
    metrics: Arc<ModelMetrics>,
    exec: Arc<Semaphore>,
}

impl Batcher {
    /// Starts the queue's task on the current tokio runtime.
    pub(super) fn spawn(
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
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(drain(
            rx,
            sandbox,
            module,
            settings,
            metrics,
            exec,
            queued.clone(),
        ));
        Batcher {
            tx,
            row_len,
            queued,
            max_queue: settings.max_queue.max(1),
            queue_timeout: settings.queue_timeout,
            direct,
        }
    }

    /// Queues `input` (whole rows) and waits at most `answer_within` for
    /// its scores.
    pub(super) async fn submit(
        &self,
        input: Vec<f32>,
        principal: Principal,
        answer_within: Duration,
    ) -> Result<Outcome, InferError> {
        let rows = input.len() / self.row_len.max(1);
        let (reply, rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job = Job {
            input,
            rows,
            principal,
            enqueued: Instant::now(),
            reply,
            state: state.clone(),
        };
        let free = self
            .direct
            .as_ref()
            .and_then(|d| Some((d, d.exec.clone().try_acquire_owned().ok()?)));
        if let Some((d, permit)) = free {
            job.state.store(STARTED, Ordering::Release);
            let (sandbox, module, metrics) =
                (d.sandbox.clone(), d.module.clone(), d.metrics.clone());
            let deadline = module.limits().deadline;
            tokio::task::spawn_blocking(move || {
                run_batch(&sandbox, &module, &metrics, vec![job]);
                drop(permit);
            });
            // Started at once: the module's deadline bounds the wait, and a
            // timer (a cost on every request) is needed only when the
            // request's own bound is the shorter.
            let reply = if deadline <= answer_within {
                rx.await
            } else {
                tokio::time::timeout(answer_within, rx)
                    .await
                    .map_err(|_| InferError::NoAnswer(answer_within))?
            };
            return Ok(reply.map_err(|_| InferError::Closed)??);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(InferError::QueueFull(self.max_queue));
        }
        if self.tx.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(InferError::Closed);
        }
        let queue_timeout = self.queue_timeout;
        let wait = async move {
            let mut rx = rx;
            tokio::select! {
                r = &mut rx => Ok(r),
                () = tokio::time::sleep(queue_timeout) => {
                    let gave_up = state
                        .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                    if gave_up {
                        return Err(InferError::QueueTimeout(queue_timeout));
                    }
                    // Started in time: the module's deadline bounds the rest.
                    Ok(rx.await)
                }
            }
        };
        let reply = tokio::time::timeout(answer_within, wait)
            .await
            .map_err(|_| InferError::NoAnswer(answer_within))??;
        Ok(reply.map_err(|_| InferError::Closed)??)
    }
}

async fn drain(
    mut rx: mpsc::UnboundedReceiver<Job>,
    sandbox: Arc<Sandbox>,
    module: Arc<LoadedModule>,
    settings: BatchSettings,
    metrics: Arc<ModelMetrics>,
    exec: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    // A job leaves the queue's count when it is claimed or discarded.
    let take = |job: &Job| {
        queued.fetch_sub(1, Ordering::AcqRel);
        job.claim()
    };
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
        if !take(&first) {
            continue;
        }
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
            let other = !settings.across_principals && job.principal != jobs[0].principal;
            if other || rows + job.rows > settings.max_batch {
                carry = Some(job);
                break;
            }
            if !take(&job) {
                continue;
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
        Err(e) if jobs.len() == 1 => {
            let _ = jobs.into_iter().next().map(|j| j.reply.send(Err(e)));
        }
        Err(_) => {
            // Re-run alone (a deadline too: it was the whole batch's), so
            // only the request that fails gets the error.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Limits;

    /// A request bound no test reaches.
    const WAIT: Duration = Duration::from_secs(3600);

    /// A version whose every call loops until its 300 ms deadline, with one
    /// execution slot and a queue of 2 that gives up after 50 ms.
    fn looping() -> (Batcher, Arc<ModelMetrics>) {
        let wasm = wat::parse_str(
            r#"(module
              (memory (export "memory") 1)
              (func (export "kiln_abi_version") (result i32) i32.const 1)
              (func (export "kiln_input_len") (result i32) i32.const 1)
              (func (export "kiln_output_len") (result i32) i32.const 1)
              (func (export "kiln_input") (param i32) (result i32) i32.const 64)
              (func (export "kiln_output") (result i32) i32.const 64)
              (func (export "kiln_run") (param i32) (result i32) (loop br 0) i32.const 0))"#,
        )
        .unwrap();
        let limits = Limits {
            memory_bytes: 1 << 20,
            deadline: Duration::from_millis(300),
            module_bytes: 1 << 20,
        };
        let sandbox = Arc::new(Sandbox::new(limits).unwrap());
        let module = Arc::new(sandbox.load(&wasm).unwrap());
        let metrics = Arc::new(ModelMetrics::default());
        let settings = BatchSettings {
            max_batch: 1,
            max_queue_delay: Duration::ZERO,
            concurrency: 1,
            max_queue: 2,
            queue_timeout: Duration::from_millis(50),
            across_principals: false,
        };
        let b = Batcher::spawn(sandbox, module, settings, metrics.clone());
        (b, metrics)
    }

    /// The queue is bounded, a request that cannot start in time gives up,
    /// and requests given up or abandoned by their caller never run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_is_bounded_and_requests_given_up_never_run() {
        let (b, metrics) = looping();
        let b = Arc::new(b);
        let submit = |b: &Arc<Batcher>| {
            let b = b.clone();
            tokio::spawn(async move { b.submit(vec![0.0], Principal::ANYONE, WAIT).await })
        };
        let running = submit(&b);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (second, third) = (submit(&b), submit(&b));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let full = b.submit(vec![0.0], Principal::ANYONE, WAIT).await;
        assert!(matches!(full, Err(InferError::QueueFull(2))), "{full:?}");
        for waiting in [second, third] {
            let r = waiting.await.unwrap();
            assert!(matches!(r, Err(InferError::QueueTimeout(_))), "{r:?}");
        }
        let r = running.await.unwrap();
        assert!(
            matches!(r, Err(InferError::Sandbox(SandboxError::Deadline(_)))),
            "{r:?}"
        );
        // A caller that goes away (its future dropped) is not run either.
        // (First let the queue's task drop the two given up.)
        tokio::time::sleep(Duration::from_millis(100)).await;
        let running = submit(&b);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let gone = submit(&b);
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        let r = running.await.unwrap();
        assert!(
            matches!(r, Err(InferError::Sandbox(SandboxError::Deadline(_)))),
            "{r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, _, _, executions) = metrics.counts();
        assert_eq!(executions, 2, "requests given up or abandoned were run");
    }

    /// A request's own bound holds whether it starts at once (shorter than
    /// the module's 300 ms deadline: the one case that needs a timer) or
    /// waits in the queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_answer_within_the_requests_bound_is_an_error() {
        let (b, _) = looping();
        let b = Arc::new(b);
        let within = Duration::from_millis(40);
        let started = Instant::now();
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.submit(vec![0.0], Principal::ANYONE, within).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let queued = b.submit(vec![0.0], Principal::ANYONE, within).await;
        assert!(matches!(queued, Err(InferError::NoAnswer(_))), "{queued:?}");
        let direct = first.await.unwrap();
        assert!(matches!(direct, Err(InferError::NoAnswer(_))), "{direct:?}");
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }

    /// A version whose module loops when either of the first two input
    /// values is 1.0 (else answers 0), batching up to 8 rows that arrive
    /// within 30 ms of each other.
    fn picky(across_principals: bool) -> (Arc<Batcher>, Arc<ModelMetrics>) {
        let wasm = wat::parse_str(
            r#"(module
              (memory (export "memory") 1)
              (func (export "kiln_abi_version") (result i32) i32.const 1)
              (func (export "kiln_input_len") (result i32) i32.const 1)
              (func (export "kiln_output_len") (result i32) i32.const 1)
              (func (export "kiln_input") (param i32) (result i32) i32.const 64)
              (func (export "kiln_output") (result i32) i32.const 1024)
              (func (export "kiln_run") (param i32) (result i32)
                (if (i32.or (f32.eq (f32.load (i32.const 64)) (f32.const 1))
                            (f32.eq (f32.load (i32.const 68)) (f32.const 1)))
                  (then (loop br 0)))
                i32.const 0))"#,
        )
        .unwrap();
        let limits = Limits {
            memory_bytes: 1 << 20,
            deadline: Duration::from_millis(200),
            module_bytes: 1 << 20,
        };
        let sandbox = Arc::new(Sandbox::new(limits).unwrap());
        let module = Arc::new(sandbox.load(&wasm).unwrap());
        let metrics = Arc::new(ModelMetrics::default());
        let settings = BatchSettings {
            max_batch: 8,
            max_queue_delay: Duration::from_millis(30),
            concurrency: 1,
            max_queue: 8,
            queue_timeout: Duration::from_secs(5),
            across_principals,
        };
        let b = Batcher::spawn(sandbox, module, settings, metrics.clone());
        (Arc::new(b), metrics)
    }

    async fn both(
        b: &Arc<Batcher>,
        first: (f32, Principal),
        second: (f32, Principal),
    ) -> [Result<Outcome, InferError>; 2] {
        let one = {
            let b = b.clone();
            tokio::spawn(async move { b.submit(vec![first.0], first.1, WAIT).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let two = b.submit(vec![second.0], second.1, WAIT).await;
        [one.await.unwrap(), two]
    }

    /// Two callers' rows never share an instance unless the model allows it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn principals_are_not_batched_together() {
        let (a, b) = (Principal::key(0), Principal::key(1));
        let (batcher, metrics) = picky(false);
        for r in both(&batcher, (0.0, a), (0.0, b)).await {
            r.unwrap();
        }
        assert_eq!(metrics.counts().3, 2, "two keys' rows shared a call");
        for r in both(&batcher, (0.0, a), (0.0, a)).await {
            assert_eq!(r.unwrap().batch_rows, 2);
        }
        assert_eq!(metrics.counts().3, 3);
        let (batcher, metrics) = picky(true);
        for r in both(&batcher, (0.0, a), (0.0, b)).await {
            r.unwrap();
        }
        assert_eq!(metrics.counts().3, 1);
    }

    /// A request that makes its batch run past the deadline fails alone: the
    /// others are re-run by themselves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_request_does_not_fail_its_batch() {
        let (batcher, _) = picky(false);
        let anyone = Principal::ANYONE;
        let [fine, slow] = both(&batcher, (0.0, anyone), (1.0, anyone)).await;
        assert_eq!(fine.unwrap().scores, [0.0]);
        let slow = slow.unwrap_err();
        assert!(
            matches!(slow, InferError::Sandbox(SandboxError::Deadline(_))),
            "{slow:?}"
        );
    }
}
