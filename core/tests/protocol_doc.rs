//! `docs/protocol.md` cannot drift from the code: every `json` example in it is
//! decoded with the worker's own types, and its tables of codes and limits are
//! compared with the constants.
//!
//! Each example is preceded by a marker comment:
//!
//! - `<!-- frame: in -->`: orchestrator → worker; must pass `decode_text`. For
//!   a command, every params field shown must survive decoding (a misspelt
//!   field would otherwise be silently ignored).
//! - `<!-- frame: in, error: CODE -->`: the worker refuses it with `CODE`; a
//!   `frame: out` right after it must be exactly the worker's reply.
//! - `<!-- frame: in, floor: FLOOR -->`: a command that decodes but the
//!   security floor FLOOR (default configuration) refuses; a `frame: out` right
//!   after it must be exactly the worker's `forbidden` result.
//! - `<!-- frame: out -->`: worker → orchestrator; must parse as `Outgoing`
//!   and serialize back to exactly the example.
//! - `<!-- result: NAME -->`: a successful `result` whose payload must parse as
//!   NAME's result type and serialize back to exactly the example.
//! - `<!-- progress: NAME -->`: a `progress` frame whose payload is an `ImageProgress`.

use cropscode_core::policy::{Policy, SecurityFloor};
use cropscode_core::protocol::commands::bounds::*;
use cropscode_core::protocol::commands::{COMMAND_NAMES, CommandOutput, ImageProgress};
use cropscode_core::protocol::limits::TRANSPORT_MAX_MESSAGE_BYTES;
use cropscode_core::protocol::{
    CommandResult, ErrorCode, Incoming, Limits, Outgoing, PROTOCOL_VERSION, decode_text, encode,
};
use serde_json::Value;

const DOC: &str = include_str!("../../docs/protocol.md");

struct Example {
    line: usize,
    marker: String,
    json: String,
}

/// Every ```json block with the marker comment on the line before it.
fn examples() -> Vec<Example> {
    let lines: Vec<&str> = DOC.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```json" {
            let marker = i
                .checked_sub(1)
                .map(|j| lines[j].trim())
                .and_then(|l| l.strip_prefix("<!--"))
                .and_then(|l| l.strip_suffix("-->"))
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| panic!("docs/protocol.md:{}: json block without a marker comment", i + 1));
            let start = i + 1;
            let end = (start..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap_or_else(|| panic!("docs/protocol.md:{}: unterminated json block", i + 1));
            out.push(Example { line: i + 1, marker, json: lines[start..end].join("\n") });
            i = end;
        }
        i += 1;
    }
    out
}

fn parse(example: &Example) -> Value {
    serde_json::from_str(&example.json).unwrap_or_else(|e| panic!("docs/protocol.md:{}: not JSON: {e}", example.line))
}

/// Every key of `doc` exists in `code` with an equal value (numbers compared as numbers).
fn assert_subset(doc: &Value, code: &Value, path: &str, line: usize) {
    match (doc, code) {
        (Value::Object(d), Value::Object(c)) => {
            for (key, value) in d {
                if key == "credential" {
                    continue; // a Secret: decoded, never serialized back
                }
                let here = format!("{path}.{key}");
                let Some(other) = c.get(key) else {
                    panic!("docs/protocol.md:{line}: `{here}` is not a field the worker reads")
                };
                assert_subset(value, other, &here, line);
            }
        }
        (Value::Array(d), Value::Array(c)) => {
            assert_eq!(d.len(), c.len(), "docs/protocol.md:{line}: `{path}` length");
            for (i, (d, c)) in d.iter().zip(c).enumerate() {
                assert_subset(d, c, &format!("{path}[{i}]"), line);
            }
        }
        (Value::Number(d), Value::Number(c)) => {
            assert_eq!(d.as_f64(), c.as_f64(), "docs/protocol.md:{line}: `{path}`");
        }
        (d, c) => assert_eq!(d, c, "docs/protocol.md:{line}: `{path}`"),
    }
}

/// The text of a command's section: from its `### ` heading to the next heading.
fn section_of(name: &str) -> &'static str {
    let heading = format!("\n### `{name}`\n");
    let start = DOC.find(&heading).unwrap_or_else(|| panic!("no section for {name}")) + heading.len();
    let rest = &DOC[start..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

fn error_code(name: &str) -> ErrorCode {
    serde_json::from_value(Value::String(name.to_string())).unwrap_or_else(|_| panic!("`{name}` is not an error code"))
}

#[test]
fn every_example_decodes_with_the_workers_types() {
    let examples = examples();
    assert!(examples.len() > 40, "only {} examples found", examples.len());
    let mut commands_shown = Vec::new();
    let mut results_shown = Vec::new();
    // The worker's answer to the `frame: in, …` example just before (its line and the frame).
    let mut pending_reply: Option<(usize, Outgoing)> = None;

    for example in &examples {
        let line = example.line;
        let marker = example.marker.as_str();
        let expected_reply = pending_reply.take();
        if marker == "frame: in" {
            match decode_text(&example.json, &Limits::DEFAULT) {
                Ok(Incoming::Command { command, .. }) => {
                    let doc = parse(example);
                    let params = doc.get("params").cloned().unwrap_or(Value::Null);
                    assert_subset(&params, &command.params_json(), "params", line);
                    commands_shown.push(command.name());
                }
                Ok(_) => {}
                Err(e) => panic!("docs/protocol.md:{line}: the worker refuses this frame: {}", e.error),
            }
        } else if let Some(code) = marker.strip_prefix("frame: in, error: ") {
            let error = decode_text(&example.json, &Limits::DEFAULT)
                .err()
                .unwrap_or_else(|| panic!("docs/protocol.md:{line}: the worker accepts this frame"));
            assert_eq!(error.error.code, error_code(code), "docs/protocol.md:{line}: {}", error.error);
            pending_reply = Some((line, error.reply()));
        } else if let Some(floor) = marker.strip_prefix("frame: in, floor: ") {
            let floor =
                SecurityFloor::parse(floor).unwrap_or_else(|_| panic!("docs/protocol.md:{line}: floor `{floor}`"));
            let Ok(Incoming::Command { id, command }) = decode_text(&example.json, &Limits::DEFAULT) else {
                panic!("docs/protocol.md:{line}: not a command the worker decodes")
            };
            commands_shown.push(command.name());
            let refusal = Policy::new(floor)
                .judge(&command)
                .expect_err(&format!("docs/protocol.md:{line}: the `{floor}` floor accepts this command"));
            let answer = CommandResult::from_outcome(id, Err(refusal.to_wire()));
            pending_reply = Some((line, Outgoing::Result(answer)));
        } else if marker == "frame: out" {
            let doc = parse(example);
            let outgoing: Outgoing = serde_json::from_str(&example.json)
                .unwrap_or_else(|e| panic!("docs/protocol.md:{line}: not an outgoing frame: {e}"));
            let back: Value = serde_json::from_str(&encode(&outgoing)).unwrap();
            assert_eq!(back, doc, "docs/protocol.md:{line}: does not round-trip");
            if let Some((in_line, reply)) = expected_reply {
                let reply: Value = serde_json::from_str(&encode(&reply)).unwrap();
                assert_eq!(reply, doc, "docs/protocol.md:{line}: is not the worker's reply to line {in_line}");
            }
            if let Outgoing::Register(register) = &outgoing {
                assert_eq!(register.protocol_version, PROTOCOL_VERSION, "docs/protocol.md:{line}");
                assert_eq!(register.limits, Limits::DEFAULT, "docs/protocol.md:{line}: limits");
            }
        } else if let Some(name) = marker.strip_prefix("result: ") {
            let doc = parse(example);
            let Ok(Outgoing::Result(result)) = serde_json::from_str::<Outgoing>(&example.json) else {
                panic!("docs/protocol.md:{line}: not a result frame")
            };
            assert!(result.ok, "docs/protocol.md:{line}: a `result:` example must succeed");
            let payload = doc["result"].clone();
            let output = CommandOutput::decode(name, payload.clone())
                .unwrap_or_else(|e| panic!("docs/protocol.md:{line}: not a {name} result: {e:?}"));
            assert_eq!(output.name(), name);
            assert_eq!(output.into_value(), payload, "docs/protocol.md:{line}: {name} result does not round-trip");
            // Every field the example shows has its row in the command's table.
            let mut section = section_of(name);
            if let Some(other) = section.split("Result: as [`").nth(1).and_then(|r| r.split('`').next()) {
                section = section_of(other);
            }
            for key in payload.as_object().into_iter().flat_map(|o| o.keys()) {
                assert!(section.contains(&format!("| `{key}` |")), "docs/protocol.md:{line}: no table row for `{key}`");
            }
            results_shown.push(name.to_string());
        } else if let Some(name) = marker.strip_prefix("progress: ") {
            assert!(["container.create", "image.build"].contains(&name), "docs/protocol.md:{line}: {name}");
            let doc = parse(example);
            let Ok(Outgoing::Progress(progress)) = serde_json::from_str::<Outgoing>(&example.json) else {
                panic!("docs/protocol.md:{line}: not a progress frame")
            };
            let typed: ImageProgress = serde_json::from_value(progress.progress.clone())
                .unwrap_or_else(|e| panic!("docs/protocol.md:{line}: not an ImageProgress: {e}"));
            assert_eq!(serde_json::to_value(typed).unwrap(), doc["progress"], "docs/protocol.md:{line}");
        } else {
            panic!("docs/protocol.md:{line}: unknown marker `{marker}`");
        }
    }

    for name in COMMAND_NAMES {
        assert!(DOC.contains(&format!("\n### `{name}`\n")), "no section for {name}");
        assert!(commands_shown.contains(name), "no command example for {name}");
        assert!(results_shown.iter().any(|r| r == name), "no result example for {name}");
    }
}

fn table_row(key: &str) -> &'static str {
    let mut rows = DOC.lines().filter(|l| l.starts_with('|') && l.contains(key));
    rows.next().unwrap_or_else(|| panic!("no table row mentions {key}"))
}

#[test]
fn error_code_table_matches() {
    for code in [
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownCommand,
        ErrorCode::FrameTooLarge,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Forbidden,
        ErrorCode::EngineUnavailable,
        ErrorCode::Timeout,
        ErrorCode::Busy,
        ErrorCode::Internal,
    ] {
        let row = table_row(&format!("| `{}` |", code.as_str()));
        let retry = row.trim_end_matches('|').rsplit('|').next().unwrap_or("").trim();
        assert_eq!(retry.starts_with("yes"), code.is_retryable(), "retryability of {code}: {row}");
    }
}

#[test]
fn limits_tables_match() {
    let Value::Object(limits) = serde_json::to_value(Limits::DEFAULT).unwrap() else { panic!() };
    for (name, value) in limits {
        let row = table_row(&format!("| `{name}` |"));
        assert!(row.contains(&format!("| {value}")), "{name} = {value}: {row}");
    }
    assert!(table_row("| transport cap |").contains(&format!("| {TRANSPORT_MAX_MESSAGE_BYTES} ")));

    let numbers: &[(&str, String)] = &[
        ("MAX_ID_BYTES", MAX_ID_BYTES.to_string()),
        ("MAX_IMAGE_REF_BYTES", MAX_IMAGE_REF_BYTES.to_string()),
        ("MAX_PATH_BYTES", MAX_PATH_BYTES.to_string()),
        ("MAX_ARGS", MAX_ARGS.to_string()),
        ("MAX_ARG_BYTES", MAX_ARG_BYTES.to_string()),
        ("MAX_ENV_ENTRIES", MAX_ENV_ENTRIES.to_string()),
        ("MAX_ENV_NAME_BYTES", MAX_ENV_NAME_BYTES.to_string()),
        ("MAX_ENV_VALUE_BYTES", MAX_ENV_VALUE_BYTES.to_string()),
        ("MAX_LABELS", MAX_LABELS.to_string()),
        ("MAX_LABEL_KEY_BYTES", MAX_LABEL_KEY_BYTES.to_string()),
        ("MAX_LABEL_VALUE_BYTES", MAX_LABEL_VALUE_BYTES.to_string()),
        ("RESERVED_LABEL_PREFIX", format!("`{RESERVED_LABEL_PREFIX}`")),
        ("MAX_FILES", MAX_FILES.to_string()),
        ("MAX_PORTS", MAX_PORTS.to_string()),
        ("MAX_MOUNTS", MAX_MOUNTS.to_string()),
        ("MAX_DEVICES", MAX_DEVICES.to_string()),
        ("MAX_CAPABILITIES", MAX_CAPABILITIES.to_string()),
        ("MAX_SECURITY_OPTS", MAX_SECURITY_OPTS.to_string()),
        ("MAX_SECURITY_OPT_BYTES", MAX_SECURITY_OPT_BYTES.to_string()),
        ("MAX_SYSCTLS", MAX_SYSCTLS.to_string()),
        ("MAX_OPTION_BYTES", MAX_OPTION_BYTES.to_string()),
        ("MAX_URL_BYTES", MAX_URL_BYTES.to_string()),
        ("MAX_CREDENTIAL_BYTES", MAX_CREDENTIAL_BYTES.to_string()),
        ("MAX_FILTER_BYTES", MAX_FILTER_BYTES.to_string()),
        ("MAX_DOCKERFILE_BYTES", MAX_DOCKERFILE_BYTES.to_string()),
        ("MIN_CPUS", MIN_CPUS.to_string()),
        ("MAX_CPUS", MAX_CPUS.to_string()),
        ("MIN_MEMORY_BYTES", MIN_MEMORY_BYTES.to_string()),
        ("MAX_MEMORY_BYTES", MAX_MEMORY_BYTES.to_string()),
        ("MAX_PIDS_LIMIT", MAX_PIDS_LIMIT.to_string()),
        ("MAX_EXEC_TIMEOUT_MS", MAX_EXEC_TIMEOUT_MS.to_string()),
        ("DEFAULT_EXEC_TIMEOUT_MS", DEFAULT_EXEC_TIMEOUT_MS.to_string()),
        ("MAX_GRACE_MS", MAX_GRACE_MS.to_string()),
        ("DEFAULT_STOP_GRACE_MS", DEFAULT_STOP_GRACE_MS.to_string()),
        ("MAX_OUTPUT_BYTES", MAX_OUTPUT_BYTES.to_string()),
        ("DEFAULT_MAX_OUTPUT_BYTES", DEFAULT_MAX_OUTPUT_BYTES.to_string()),
        ("DEFAULT_CAPTURE_BYTES", DEFAULT_CAPTURE_BYTES.to_string()),
        ("MAX_INPUT_BYTES", MAX_INPUT_BYTES.to_string()),
        ("MAX_CLONE_DEPTH", MAX_CLONE_DEPTH.to_string()),
        ("MIN_TERMINAL_SIZE", MIN_TERMINAL_SIZE.to_string()),
        ("MAX_TERMINAL_SIZE", MAX_TERMINAL_SIZE.to_string()),
        ("DEFAULT_COLS", DEFAULT_COLS.to_string()),
        ("DEFAULT_ROWS", DEFAULT_ROWS.to_string()),
        ("DEFAULT_SHELL", format!("`{DEFAULT_SHELL}`")),
        ("DEFAULT_DISPLAY_PORT", DEFAULT_DISPLAY_PORT.to_string()),
        ("MAX_FILE_MODE", MAX_FILE_MODE.to_string()),
        ("DEFAULT_FILE_MODE", DEFAULT_FILE_MODE.to_string()),
        ("DEFAULT_TARGET_DIR", format!("`{DEFAULT_TARGET_DIR}`")),
    ];
    for (name, value) in numbers {
        let row = table_row(&format!("| `{name}` |"));
        assert!(row.contains(&format!("| {value}")), "{name} = {value}: {row}");
    }
}
