//! What servers log, captured for a test to read. The subscriber is the process's global default,
//! installed once: a thread-local one (`set_default`) races with the other tests of the binary over
//! tracing's callsite cache, and loses lines. Tests find their own lines by a request id of their own.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The captured output of the whole test binary (plain text, no colours).
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// The capture, installed as the global subscriber (everything at `info` and above) on first use.
    pub fn global() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .finish();
            // Another global subscriber already set means this capture sees nothing: say so loudly.
            if tracing::subscriber::set_global_default(subscriber).is_err() {
                panic!("a global tracing subscriber was already installed in this test binary");
            }
            logs
        })
        .clone()
    }

    /// The lines written so far that contain `needle` (such as a request id).
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes).lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
