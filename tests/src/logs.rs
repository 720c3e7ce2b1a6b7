//! Log lines captured for a test to read: what the functions said while it ran.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything written to it, kept; clones share it.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A subscriber that writes plain lines (no colour codes) here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish()
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The names of every span rushcart's code opened in this process, once
/// [`record_spans`] has installed the recorder.
static SPANS: std::sync::OnceLock<Arc<Mutex<std::collections::BTreeSet<String>>>> = std::sync::OnceLock::new();

/// Installs, once per test process, a global subscriber that notes the name of every
/// span opened under the `rushcart` target (and enables nothing else). For a test
/// binary that installs no other global subscriber.
pub fn record_spans() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    SPANS.get_or_init(|| {
        let names = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let layer = SpanNames(names.clone())
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("rushcart", tracing::Level::TRACE));
        tracing_subscriber::registry().with(layer).try_init().expect("no other global subscriber in this test binary");
        names
    });
}

/// The span names [`record_spans`] has seen so far.
pub fn spans_seen() -> Vec<String> {
    SPANS.get().map(|names| names.lock().unwrap().iter().cloned().collect()).unwrap_or_default()
}

struct SpanNames(Arc<Mutex<std::collections::BTreeSet<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.lock().unwrap().insert(attrs.metadata().name().to_owned());
    }
}
