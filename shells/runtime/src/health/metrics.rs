//! `/metrics`: the [`Health`] record in Prometheus' text exposition format (0.0.4).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cropscode_build_info` | gauge (1) | `version` |
//! | `cropscode_up` | gauge: the loop turns | |
//! | `cropscode_loop_last_turn_age_seconds` | gauge | |
//! | `cropscode_connection_state` | gauge (1 for the current state) | `state` |
//! | `cropscode_reconnects_total` | counter: connection attempts after the first | |
//! | `cropscode_commands_total` | counter | `command`, `outcome` (`ok`, an error code, `replayed`, `already_running`) |
//! | `cropscode_command_duration_seconds` | histogram: `Execute` to its audited result | |
//! | `cropscode_commands_running` | gauge | |
//! | `cropscode_sessions_open` | gauge | `kind` (`terminal`, `display`) |
//! | `cropscode_stream_bytes_total` | counter | `direction` (`out`: engine → orchestrator, `in`) |
//! | `cropscode_heartbeat_cpu_usage_percent`, `…_memory_free_bytes`, `…_disk_free_bytes`, `…_containers_running` | gauges: the last heartbeat | |
//! | `cropscode_engine_up` | gauge: the engine answered its last check in time | |

use std::fmt::Write;
use std::sync::atomic::Ordering;

use cropscode_core::Clock;

use super::{Health, LATENCY_BUCKETS, Link};

impl Health {
    /// The metrics, as `/metrics` serves them.
    pub fn metrics(&self) -> String {
        let now = self.clock.now();
        let record = self.record();
        let mut out = String::with_capacity(4096);
        header(&mut out, "cropscode_build_info", "gauge", "The worker's version.");
        let _ = writeln!(out, "cropscode_build_info{{version=\"{}\"}} 1", escape(&self.version));
        gauge(&mut out, "cropscode_up", "1 while the agent's loop turns.", u8::from(self.pulse.is_fresh(now)));
        let age = self.pulse.age(now).map_or(f64::NAN, |d| d.as_secs_f64());
        gauge(&mut out, "cropscode_loop_last_turn_age_seconds", "Seconds since the loop last turned.", age);

        header(
            &mut out,
            "cropscode_connection_state",
            "gauge",
            "The link to the orchestrator (1 for the current state).",
        );
        for link in Link::ALL {
            let on = u8::from(record.link == Some(link));
            let _ = writeln!(out, "cropscode_connection_state{{state=\"{}\"}} {on}", link.as_str());
        }
        header(&mut out, "cropscode_reconnects_total", "counter", "Connection attempts after the first.");
        let _ = writeln!(out, "cropscode_reconnects_total {}", record.connects.saturating_sub(1));

        header(&mut out, "cropscode_commands_total", "counter", "Command frames answered, by command and outcome.");
        for ((command, outcome), count) in &record.commands {
            let _ = writeln!(out, "cropscode_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}} {count}");
        }
        header(&mut out, "cropscode_command_duration_seconds", "histogram", "From execution to result, in seconds.");
        for (bound, count) in LATENCY_BUCKETS.iter().zip(record.latency.counts) {
            let _ = writeln!(out, "cropscode_command_duration_seconds_bucket{{le=\"{bound}\"}} {count}");
        }
        let (count, sum) = (record.latency.count, record.latency.sum);
        let _ = writeln!(out, "cropscode_command_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "cropscode_command_duration_seconds_sum {sum}");
        let _ = writeln!(out, "cropscode_command_duration_seconds_count {count}");
        gauge(&mut out, "cropscode_commands_running", "Commands executing now.", record.running.len());

        let (terminals, displays) = record.sessions();
        header(&mut out, "cropscode_sessions_open", "gauge", "Live streams open, by kind.");
        let _ = writeln!(out, "cropscode_sessions_open{{kind=\"terminal\"}} {terminals}");
        let _ = writeln!(out, "cropscode_sessions_open{{kind=\"display\"}} {displays}");
        header(&mut out, "cropscode_stream_bytes_total", "counter", "Bytes of terminal and display streams.");
        let _ = writeln!(
            out,
            "cropscode_stream_bytes_total{{direction=\"out\"}} {}",
            self.bytes_out.load(Ordering::Relaxed)
        );
        let _ =
            writeln!(out, "cropscode_stream_bytes_total{{direction=\"in\"}} {}", self.bytes_in.load(Ordering::Relaxed));

        if let Some((_, h)) = &record.heartbeat {
            gauge(&mut out, "cropscode_heartbeat_cpu_usage_percent", "CPU usage in the last heartbeat.", h.cpu_usage);
            gauge(
                &mut out,
                "cropscode_heartbeat_memory_free_bytes",
                "Free memory in the last heartbeat.",
                h.memory_free,
            );
            if let Some(free) = h.disk_free {
                gauge(&mut out, "cropscode_heartbeat_disk_free_bytes", "Free space on the data disk.", free);
            }
            let running = h.containers_running;
            gauge(&mut out, "cropscode_heartbeat_containers_running", "Managed containers running.", running);
        }
        if record.engine.checked {
            let up = u8::from(record.engine.answering(now));
            gauge(&mut out, "cropscode_engine_up", "1 while the container engine answers.", up);
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
