//! Where log lines go: one bounded in-memory buffer, written to stderr by a
//! thread of its own when it holds [`FLUSH_AT`] bytes or its oldest line is
//! [`FLUSH_EVERY`] old, as nginx's buffered `access_log` (`buffer=64k
//! flush=…`).
//!
//! A line costs its caller a short lock and a copy: no system call, no
//! thread woken, except for the first line into an empty buffer and the
//! line that fills it. Past [`MAX_BYTES`] (stderr not keeping up: a stalled
//! log collector) lines are dropped and counted rather than the caller
//! slowed.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Bytes that make the writer thread write at once.
const FLUSH_AT: usize = 64 << 10;
/// Longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most bytes held; a line that would go past it is dropped.
const MAX_BYTES: usize = 4 << 20;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    dropped: AtomicUsize,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The [`MakeWriter`] of the log: every line it is given is appended to
/// the shared buffer. Clones share it.
#[derive(Clone)]
pub(crate) struct BufferedWriter(Arc<Shared>);

/// Stops the writer thread when dropped, after it wrote what is buffered.
pub(crate) struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The writer and its thread, which writes to `out`.
pub(crate) fn spawn(out: impl Write + Send + 'static) -> io::Result<(BufferedWriter, WriterGuard)> {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("kiln-log".into())
            .spawn(move || write_out(&shared, out))?
    };
    Ok((
        BufferedWriter(shared.clone()),
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl BufferedWriter {
    /// Lines dropped so far because the buffer was full.
    pub(crate) fn dropped_lines(&self) -> usize {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl<'a> MakeWriter<'a> for BufferedWriter {
    type Writer = &'a BufferedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// `tracing_subscriber::fmt` formats a whole line, then writes it in one
/// call: each `write` here is one line.
impl Write for &BufferedWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.0;
        let mut state = shared.lock();
        let held = state.lines.len();
        if held.saturating_add(line.len()) > MAX_BYTES {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        state.lines.extend_from_slice(line);
        // The thread sleeps without a deadline on an empty buffer, and
        // until FLUSH_EVERY on a partly filled one.
        if held == 0 || (held < FLUSH_AT && state.lines.len() >= FLUSH_AT) {
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer thread: waits for lines, lets them gather for at most
/// [`FLUSH_EVERY`], writes them out in one go; after `stop`, writes what
/// is left and ends.
fn write_out(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let stop = {
            let mut state = shared.lock();
            while state.lines.is_empty() && !state.stop {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.lines.len() < FLUSH_AT && !state.stop {
                state = shared
                    .wake
                    .wait_timeout(state, FLUSH_EVERY)
                    .map_or_else(|p| p.into_inner().0, |(s, _)| s);
            }
            std::mem::swap(&mut state.lines, &mut batch);
            state.stop
        };
        // A failed write (stderr closed) loses these lines; the server
        // goes on.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if stop && shared.lock().lines.is_empty() {
            return;
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `out` the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_out_within_the_flush_period_and_all_of_them_at_stop() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).unwrap();
        (&writer).write_all(b"one\n").unwrap();
        let start = std::time::Instant::now();
        while sink.0.lock().unwrap().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 0..1000 {
            (&writer)
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1001);
        assert!(text.ends_with("line 999\n"));
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_lines_instead_of_waiting() {
        /// An `out` that never returns, as a stalled pipe.
        struct Stalled;
        impl Write for Stalled {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                loop {
                    std::thread::park();
                }
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (writer, guard) = spawn(Stalled).unwrap();
        let line = [b'x'; 1024];
        // The thread takes at most one batch before it stalls; the buffer
        // then fills to MAX_BYTES and every further line is dropped.
        let lines = 3 * MAX_BYTES / line.len();
        for _ in 0..lines {
            (&writer).write_all(&line).unwrap();
        }
        let dropped = writer.dropped_lines();
        assert!(
            dropped >= lines - 2 * MAX_BYTES / line.len(),
            "{dropped} of {lines} dropped"
        );
        // The stalled thread is never joined.
        std::mem::forget(guard);
    }
}
