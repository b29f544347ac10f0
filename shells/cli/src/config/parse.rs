//! Parsers for single configuration values.
//!
//! Each parser takes the raw text exactly as the user wrote it (flag, environment
//! variable or file) and returns either the typed value or a message that reads
//! well after "KEY (source): ". Messages quote the offending text so the user can
//! find it; the token is never parsed here, so it can never be quoted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cropscode_core::policy::SecurityFloor;
use cropscode_core::protocol::Mode;
use tracing_subscriber::filter::Targets;

/// Parses `500ms`, `10s`, `2m`, `1h`, or a sum of such parts like `1m30s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected a duration like 45s, got '{text}'");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Some(Duration::from_millis(amount)),
            "s" => Some(Duration::from_secs(amount)),
            "m" => amount.checked_mul(60).map(Duration::from_secs),
            "h" => amount.checked_mul(3600).map(Duration::from_secs),
            _ => return Err(expected()),
        };
        rest = &rest[unit_len..];
        total = part.and_then(|p| total.checked_add(p)).ok_or_else(|| format!("duration '{text}' is too large"))?;
    }
    Ok(total)
}

/// A duration within `[min, max]`, for timers where zero would mean a hot loop.
pub fn duration_between(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let value = duration(text)?;
    if value < min || value > max {
        return Err(format!(
            "'{text}' is out of range: expected between {} and {}",
            show_duration(min),
            show_duration(max)
        ));
    }
    Ok(value)
}

/// Formats a duration the way [`duration`] reads it (`1m30s`, `500ms`).
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    for (amount, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if amount > 0 {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    out
}

/// `byom` or `fleet`.
pub fn mode(text: &str) -> Result<Mode, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "byom" => Ok(Mode::Byom),
        "fleet" => Ok(Mode::Fleet),
        _ => Err(format!("expected byom or fleet, got '{text}'")),
    }
}

/// `BACKOFF_JITTER`: the fraction of each backoff delay that is randomised.
pub fn jitter(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to 1 (1 = full jitter), got '{text}'")),
    }
}

/// `LOG_LEVEL`: `tracing_subscriber` `Targets` syntax (`info`, `warn,cropscode_core=debug`).
///
/// A bare word must be a level: `Targets` alone would read `LOG_LEVEL=loud` as
/// "trace for a target named loud" and silently log nothing else.
pub fn log_level(text: &str) -> Result<Targets, String> {
    let expected = || {
        format!(
            "expected a level (off, error, warn, info, debug, trace) or targets like 'info,cropscode_core=debug', got '{text}'"
        )
    };
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(expected());
        }
    }
    Targets::from_str(text.trim()).map_err(|_| expected())
}

/// A switch: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("expected 1 or 0 (true/false), got '{}'", other.escape_debug())),
    }
}

/// An address to listen on, `127.0.0.1:9464` or `[::1]:9464` (`localhost:9464` too).
pub fn socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    let local = text.strip_prefix("localhost:").map(|port| format!("127.0.0.1:{port}"));
    local
        .as_deref()
        .unwrap_or(text)
        .parse()
        .map_err(|_| format!("expected an address like 127.0.0.1:9464 or [::1]:9464, got '{}'", text.escape_debug()))
}

/// A path value: any non-empty text.
pub fn path(text: &str) -> Result<std::path::PathBuf, String> {
    if text.trim().is_empty() { Err("expected a path, got an empty value".into()) } else { Ok(text.into()) }
}

/// Human or machine log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("expected text or json, got '{text}'")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// `SECURITY_FLOOR`: core's [`SecurityFloor`] (its one table of names), read
/// as the other settings are: surrounding spaces and letter case do not matter.
pub fn security_floor(text: &str) -> Result<SecurityFloor, String> {
    SecurityFloor::parse(&text.trim().to_ascii_lowercase())
        .map_err(|_| format!("expected baseline, restricted or none, got '{text}'"))
}

/// A comma-separated list of absolute paths (`ALLOWED_BIND_ROOTS`); empty means none.
pub fn absolute_paths(text: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !std::path::Path::new(part).is_absolute() {
            return Err(format!("expected absolute paths separated by commas, got '{}'", part.escape_debug()));
        }
        paths.push(part.to_owned());
    }
    Ok(paths)
}

/// An inclusive port range `LOW-HIGH` (`HOST_PORT_RANGE`), 1 ≤ LOW ≤ HIGH ≤ 65535.
pub fn port_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("expected a port range like 1024-65535, got '{}'", text.trim().escape_debug());
    let (low, high) = text.trim().split_once('-').ok_or_else(bad)?;
    let low: u16 = low.trim().parse().map_err(|_| bad())?;
    let high: u16 = high.trim().parse().map_err(|_| bad())?;
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration(" 1m30s "), Ok(Duration::from_secs(90)));
        assert_eq!(duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_what_was_expected() {
        for bad in ["", "abc", "10", "s", "10x", "1.5s", "-1s", "10 s", "ms10", "10sm"] {
            let err = duration(bad).unwrap_err();
            assert!(err.contains("expected a duration like 45s"), "{bad}: {err}");
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        assert!(duration("99999999999999999999h").is_err());
        assert!(duration("18446744073709551615h").unwrap_err().contains("too large"));
    }

    #[test]
    fn ranges_are_enforced() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(3600));
        assert_eq!(duration_between("1s", min, max), Ok(Duration::from_secs(1)));
        assert!(duration_between("0s", min, max).unwrap_err().contains("between 100ms and 1h"));
        assert!(duration_between("2h", min, max).is_err());
    }

    #[test]
    fn durations_print_as_they_parse() {
        for text in ["500ms", "10s", "2m", "1h", "1m30s", "1h1m1s1ms"] {
            assert_eq!(show_duration(duration(text).unwrap()), text);
        }
    }

    #[test]
    fn enumerations() {
        assert_eq!(mode("FLEET"), Ok(Mode::Fleet));
        assert!(mode("cloud").unwrap_err().contains("byom or fleet"));
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert!(LogFormat::parse("xml").is_err());
        assert_eq!(security_floor("restricted"), Ok(SecurityFloor::Restricted));
        assert_eq!(security_floor(" None "), Ok(SecurityFloor::None));
        assert!(security_floor("lax").unwrap_err().contains("expected baseline, restricted or none, got 'lax'"));
        assert_eq!(jitter("0.5"), Ok(0.5));
        assert!(jitter("1.5").is_err());
        assert!(jitter("nan").is_err());
        assert!(log_level("info,cropscode_core=debug").is_ok());
        assert!(log_level("loud").is_err());
    }

    #[test]
    fn bind_roots_and_port_ranges() {
        // Absolute as the host sees it: `/srv/data` is not absolute on Windows.
        let (a, b) = if cfg!(windows) { (r"C:\srv\data", r"D:\x") } else { ("/srv/data", "/mnt/x") };
        assert_eq!(absolute_paths("").unwrap(), Vec::<String>::new());
        assert_eq!(absolute_paths(&format!(" {a} , {b} ")).unwrap(), [a, b]);
        assert!(absolute_paths(&format!("{a},relative")).unwrap_err().contains("relative"));
        assert_eq!(port_range("8000-9000").unwrap(), (8000, 9000));
        assert_eq!(port_range(" 80 - 80 ").unwrap(), (80, 80));
        for bad in ["", "80", "0-10", "9000-8000", "1-70000", "a-b"] {
            assert!(port_range(bad).is_err(), "{bad}");
        }
    }
}
