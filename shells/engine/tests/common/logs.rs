//! A `tracing` subscriber that keeps every event and span field as text, so a test can
//! check what the worker logged (and what it must never log).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Appends one line per event (and span), every field included, at every level.
pub struct Capture(pub Arc<Mutex<String>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

impl Capture {
    fn push(&self, level: &tracing::Level, fields: impl FnOnce(&mut Line<'_>)) {
        let mut line = format!("{level}");
        fields(&mut Line(&mut line));
        line.push('\n');
        if let Ok(mut logs) = self.0.lock() {
            logs.push_str(&line);
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.push(span.metadata().level(), |line| span.record(line));
        Id::from_u64(NEXT_SPAN.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        self.push(&tracing::Level::TRACE, |line| values.record(line));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.push(event.metadata().level(), |line| event.record(line));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs [`Capture`] as this test binary's subscriber (once) and returns its text.
pub fn capture() -> Arc<Mutex<String>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<String>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(String::new()));
        tracing::subscriber::set_global_default(Capture(logs.clone())).expect("one subscriber");
        logs
    })
    .clone()
}
