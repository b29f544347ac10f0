//! Log lines on stderr: human text by default, JSON objects with `LOG_FORMAT=json`,
//! filtered by `LOG_LEVEL` in `tracing_subscriber`'s `Targets` syntax.
//!
//! Nothing here redacts: the token is a `Secret`, whose `Debug` and `Display`
//! print `***`, so it cannot reach a log line through a field or a message.

use std::io::IsTerminal;

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber. Later calls are ignored (tests may start
/// several commands in one process).
pub fn init(format: LogFormat, filter: Targets) {
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(true);
    let layer = match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_current_span(false).boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
}

#[cfg_attr(not(windows), allow(dead_code))]
/// Installs the global subscriber writing to `writer` (a service without a console: its
/// rotated log file), without colours.
pub fn init_to<W>(format: LogFormat, filter: Targets, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true).with_ansi(false);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_current_span(false).boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
}
