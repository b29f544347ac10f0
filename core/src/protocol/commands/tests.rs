//! Decoding and validation of every command: one valid frame each, one
//! refusal per rule, unknown fields, secrets kept out of `Debug`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Value, json};

use super::*;
use crate::protocol::{ErrorCode, Incoming, Limits, decode_text};

fn decode(name: &str, params: Value) -> Result<Command, CommandDecodeError> {
    Command::decode(name, params)
}

fn invalid(name: &str, params: Value) -> String {
    match decode(name, params) {
        Err(CommandDecodeError::Invalid(message)) => message,
        other => panic!("{name}: expected Invalid, got {other:?}"),
    }
}

/// A minimal valid params object per command.
fn minimal(name: &str) -> Value {
    match name {
        "container.create" => json!({"image": "busybox:latest", "tenant": "t1"}),
        "container.setup" => json!({"containerId": "c1", "files": [{"path": "/workspace/CLAUDE.md", "content": "hi"}]}),
        "container.start" | "container.stop" | "container.remove" | "display.open" | "terminal.open" => {
            json!({"containerId": "c1"})
        }
        "container.list" => json!({"tenant": "t1"}),
        "container.list-all" | "images.list" => json!({}),
        "container.exec" | "container.exec.background" => json!({"containerId": "c1", "command": ["ls"]}),
        "container.exec.background.kill" | "container.exec.background.capture" => json!({"execId": "x1"}),
        "image.check" | "image.delete" => json!({"image": "busybox"}),
        "image.build" => json!({"tag": "acme/dev:1", "dockerfile": "FROM busybox\n"}),
        "terminal.input" => json!({"sessionId": "s1", "data": "ls\r"}),
        "terminal.resize" => json!({"sessionId": "s1", "cols": 120, "rows": 40}),
        "terminal.close" | "display.close" => json!({"sessionId": "s1"}),
        other => panic!("no minimal params for {other}"),
    }
}

fn with(name: &str, field: &str, value: Value) -> Value {
    let mut params = minimal(name);
    params[field] = value;
    params
}

#[test]
fn names_are_the_products_in_order() {
    assert_eq!(COMMAND_NAMES.len(), 21);
    let mut sorted: Vec<_> = COMMAND_NAMES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 21, "duplicate names");
    assert_eq!(COMMAND_NAMES[0], "container.create");
    assert_eq!(COMMAND_NAMES[20], "display.close");
}

#[test]
fn every_command_decodes_from_a_frame() {
    for (i, name) in COMMAND_NAMES.iter().enumerate() {
        let frame = json!({"type": name, "id": format!("c-{i}"), "params": minimal(name)}).to_string();
        match decode_text(&frame, &Limits::DEFAULT) {
            Ok(Incoming::Command { id, command }) => {
                assert_eq!(id, format!("c-{i}"));
                assert_eq!(command.name(), *name);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unknown_names_are_unknown() {
    assert_eq!(decode("container.teleport", json!({})), Err(CommandDecodeError::Unknown));
    assert_eq!(CommandOutput::decode("container.teleport", json!({})), Err(CommandDecodeError::Unknown));
}

#[test]
fn params_must_be_an_object() {
    assert!(invalid("container.list", json!([1])).contains("`params` must be an object"));
    assert!(invalid("container.list-all", Value::Null).contains("`params`"));
}

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let params = json!({
        "image": "busybox", "tenant": "t1", "fromTheFuture": {"x": [1, 2]},
        "mounts": [{"type": "volume", "source": "data", "target": "/data", "extra": true}],
        "resources": {"cpus": 1, "gpu": "yes"},
    });
    let Command::ContainerCreate(create) = decode("container.create", params).unwrap() else { panic!() };
    assert_eq!(create.mounts[0].target, "/data");
    assert_eq!(create.resources.unwrap().cpus, Some(1.0));
}

#[test]
fn defaults_are_applied() {
    let Command::TerminalOpen(open) = decode("terminal.open", minimal("terminal.open")).unwrap() else { panic!() };
    assert_eq!((open.command.as_slice(), open.cols, open.rows, open.offset), (&["/bin/sh".to_string()][..], 80, 24, 0));
    let Command::DisplayOpen(display) = decode("display.open", minimal("display.open")).unwrap() else { panic!() };
    assert_eq!(display.port, 5900);
    let Command::ContainerSetup(setup) = decode("container.setup", minimal("container.setup")).unwrap() else {
        panic!()
    };
    assert_eq!(setup.target_dir, "/workspace");
    assert_eq!(setup.files[0].mode(), 0o644);
    let Command::ContainerExec(exec) = decode("container.exec", minimal("container.exec")).unwrap() else { panic!() };
    assert_eq!((exec.timeout_ms(), exec.max_output_bytes(), exec.output_encoding), (600_000, 1 << 20, Encoding::Utf8));
    let Command::ContainerStop(stop) = decode("container.stop", minimal("container.stop")).unwrap() else { panic!() };
    assert_eq!(stop.grace_ms(), 10_000);
    let Command::ContainerCreate(create) = decode("container.create", minimal("container.create")).unwrap() else {
        panic!()
    };
    assert_eq!((create.pull, create.privileged), (PullPolicy::Missing, false));
}

#[test]
fn type_errors_name_the_field() {
    let message = invalid("container.start", json!({"containerId": 7}));
    assert!(message.starts_with("`containerId`: invalid type"), "{message}");
    let message = invalid("terminal.resize", json!({"sessionId": "s1", "cols": 70000, "rows": 2}));
    assert!(message.starts_with("`cols`:"), "{message}");
    let message = invalid("container.create", with("container.create", "mounts", json!([{"type": "tmpfs"}])));
    assert!(message.starts_with("`mounts`:") && message.contains("unknown variant"), "{message}");
    let message = invalid("container.list", json!({}));
    assert!(message.contains("missing field `tenant`"), "{message}");
}

#[test]
fn target_and_tenant_helpers() {
    let exec = decode("container.exec", with("container.exec", "tenant", json!("acme"))).unwrap();
    assert_eq!((exec.target_container(), exec.tenant()), (Some("c1"), Some("acme")));
    let list = decode("container.list", minimal("container.list")).unwrap();
    assert_eq!((list.target_container(), list.tenant()), (None, Some("t1")));
    let create = decode("container.create", minimal("container.create")).unwrap();
    assert_eq!((create.target_container(), create.tenant()), (None, Some("t1")));
    let input = decode("terminal.input", minimal("terminal.input")).unwrap();
    assert_eq!((input.target_container(), input.tenant()), (None, None));
    for name in COMMAND_NAMES {
        let command = decode(name, minimal(name)).unwrap();
        let has_container = minimal(name).get("containerId").is_some();
        assert_eq!(command.target_container().is_some(), has_container, "{name}");
    }
}

#[test]
fn secrets_never_reach_debug_or_json() {
    let params = json!({
        "containerId": "c1",
        "repo": {"url": "https://git.example/acme/app.git", "credential": "ghp_SECRET123"},
        "env": {"API_KEY": "sk-ENVSECRET"},
    });
    let command = decode("container.setup", params).unwrap();
    let Command::ContainerSetup(setup) = &command else { panic!() };
    assert_eq!(setup.repo.as_ref().unwrap().credential.as_ref().unwrap().expose(), "ghp_SECRET123");
    let shown = format!("{command:?} {:#?}", command);
    assert!(!shown.contains("ghp_SECRET123") && shown.contains("***"), "{shown}");
    assert!(!command.params_json().to_string().contains("ghp_SECRET123"));

    let exec = decode(
        "container.exec",
        json!({"containerId": "c1", "command": ["env"], "env": {"API_KEY": "sk-ENVSECRET"}, "stdin": "hunter2"}),
    )
    .unwrap();
    let shown = format!("{exec:?}");
    assert!(shown.contains("API_KEY") && !shown.contains("sk-ENVSECRET") && !shown.contains("hunter2"), "{shown}");
    let input = decode("terminal.input", json!({"sessionId": "s1", "data": "hunter2\r"})).unwrap();
    assert!(!format!("{input:?}").contains("hunter2"));
    let setup = decode("container.setup", minimal("container.setup")).unwrap();
    assert!(!format!("{setup:?}").contains("\"hi\""));
}

#[test]
fn params_json_round_trips() {
    for name in COMMAND_NAMES {
        let command = decode(name, minimal(name)).unwrap();
        assert_eq!(decode(name, command.params_json()).unwrap(), command, "{name}");
    }
}

#[test]
fn outputs_round_trip_by_name() {
    let value = json!({"containerId": "abc", "alreadyRunning": false, "future": 1});
    let output = CommandOutput::decode("container.start", value).unwrap();
    assert_eq!(output.name(), "container.start");
    assert_eq!(output.into_value(), json!({"containerId": "abc", "alreadyRunning": false}));
    let value = json!({"containers": [{"containerId": "a", "name": "n", "image": "i", "state": "hibernating",
        "status": "?", "createdAt": 1}]});
    let CommandOutput::ContainerListAll(list) = CommandOutput::decode("container.list-all", value).unwrap() else {
        panic!()
    };
    assert_eq!(list.containers[0].state, ContainerState::Unknown);
    assert!(matches!(CommandOutput::decode("image.check", json!({"image": 1})), Err(CommandDecodeError::Invalid(_))));
}

/// One refusal per validation rule: (command, params, the field the message must name).
fn refusals() -> Vec<(&'static str, Value, &'static str)> {
    let long = |n: usize| "a".repeat(n);
    let create = |field: &str, value: Value| with("container.create", field, value);
    let mut many_env = serde_json::Map::new();
    for i in 0..257 {
        many_env.insert(format!("V{i}"), json!("x"));
    }
    let mut many_labels = serde_json::Map::new();
    for i in 0..65 {
        many_labels.insert(format!("l{i}"), json!("x"));
    }
    let file = json!({"path": "/w/f", "content": "x"});
    alloc::vec![
        // ids and names
        ("container.start", json!({"containerId": ""}), "`containerId`"),
        ("container.start", json!({"containerId": "-rm"}), "`containerId`"),
        ("container.start", json!({"containerId": "a b"}), "`containerId`"),
        ("container.start", json!({"containerId": long(129)}), "`containerId`"),
        ("container.create", create("name", json!("my/name")), "`name`"),
        ("container.create", create("name", json!("_x")), "`name`"),
        ("container.create", create("tenant", json!("")), "`tenant`"),
        ("container.list", json!({"tenant": "a\nb"}), "`tenant`"),
        ("terminal.close", json!({"sessionId": ""}), "`sessionId`"),
        ("container.exec.background.kill", json!({"execId": "x y"}), "`execId`"),
        // image references
        ("image.check", json!({"image": ""}), "`image`"),
        ("image.check", json!({"image": "busybox latest"}), "`image`"),
        ("image.check", json!({"image": "busy\u{7}box"}), "`image`"),
        ("image.delete", json!({"image": long(513)}), "`image`"),
        ("container.create", create("image", json!("--privileged")), "`image`"),
        ("image.build", with("image.build", "tag", json!("Acme Dev")), "`tag`"),
        // env names and values
        ("container.create", create("env", json!({"1BAD": "x"})), "`env.1BAD`"),
        ("container.create", create("env", json!({"A-B": "x"})), "`env.A-B`"),
        ("container.exec", with("container.exec", "env", json!({"A": "x\u{0}y"})), "`env.A`"),
        ("container.create", create("env", Value::Object(many_env.clone())), "`env`"),
        ("image.build", with("image.build", "buildArgs", Value::Object(many_env)), "`buildArgs`"),
        ("image.build", with("image.build", "buildArgs", json!({"BAD NAME": "1"})), "`buildArgs.BAD NAME`"),
        // labels
        ("container.create", create("labels", Value::Object(many_labels)), "`labels`"),
        ("container.create", create("labels", json!({"cropscode.tenant": "other"})), "`labels.cropscode.tenant`"),
        ("container.create", create("labels", json!({"a=b": "x"})), "`labels.a=b`"),
        ("container.create", create("labels", json!({"k": "x\ny"})), "`labels.k`"),
        // argv
        ("container.exec", with("container.exec", "command", json!([])), "`command`"),
        ("container.exec", with("container.exec", "command", json!([""])), "`command[0]`"),
        ("container.exec", with("container.exec", "command", json!(["a", "b\u{0}"])), "`command[1]`"),
        ("container.exec", with("container.exec", "command", Value::Array(alloc::vec![json!("x"); 1025])), "`command`"),
        ("container.create", create("entrypoint", json!([long(128 * 1024 + 1)])), "`entrypoint[0]`"),
        ("terminal.open", with("terminal.open", "command", json!([])), "`command`"),
        // files
        ("container.setup", json!({"containerId": "c1", "files": alloc::vec![file.clone(); 257]}), "`files`"),
        (
            "container.setup",
            json!({"containerId": "c1", "files": [{"path": "rel/f", "content": ""}]}),
            "`files[0].path`"
        ),
        (
            "container.setup",
            json!({"containerId": "c1", "files": [{"path": "/w/../etc/passwd", "content": ""}]}),
            "`files[0].path`"
        ),
        (
            "container.setup",
            json!({"containerId": "c1", "files": [{"path": "/w/f", "content": "%%", "encoding": "base64"}]}),
            "`files[0].content`"
        ),
        (
            "container.setup",
            json!({"containerId": "c1", "files": [{"path": "/w/f", "content": "", "mode": 0o10000}]}),
            "`files[0].mode`"
        ),
        ("container.setup", json!({"containerId": "c1"}), "`repo` or `files`"),
        ("image.build", with("image.build", "context", json!([{"path": "/abs", "content": ""}])), "`context[0].path`"),
        (
            "image.build",
            with("image.build", "context", json!([{"path": "a/../../x", "content": ""}])),
            "`context[0].path`"
        ),
        ("image.build", with("image.build", "dockerfile", json!("")), "`dockerfile`"),
        // repository
        (
            "container.setup",
            json!({"containerId": "c1", "repo": {"url": "ext::sh -c touch% /tmp/pwned"}}),
            "`repo.url`"
        ),
        ("container.setup", json!({"containerId": "c1", "repo": {"url": "--upload-pack=evil"}}), "`repo.url`"),
        ("container.setup", json!({"containerId": "c1", "repo": {"url": "ext::sh"}}), "`repo.url`"),
        (
            "container.setup",
            json!({"containerId": "c1", "repo": {"url": "https://u:pw@git.example/a.git"}}),
            "`repo.url`"
        ),
        (
            "container.setup",
            json!({"containerId": "c1", "repo": {"url": "https://git.example/a", "ref": "-b"}}),
            "`repo.ref`"
        ),
        (
            "container.setup",
            json!({"containerId": "c1", "repo": {"url": "https://git.example/a", "credential": "a\nb"}}),
            "`repo.credential`"
        ),
        (
            "container.setup",
            json!({"containerId": "c1", "repo": {"url": "https://git.example/a", "depth": 0}}),
            "`repo.depth`"
        ),
        ("container.setup", json!({"containerId": "c1", "targetDir": "workspace", "files": [file]}), "`targetDir`"),
        // container options
        ("container.create", create("workingDir", json!("src")), "`workingDir`"),
        (
            "container.create",
            create("mounts", json!([{"type": "bind", "source": "relative", "target": "/x"}])),
            "`mounts[0].source`"
        ),
        (
            "container.create",
            create("mounts", json!([{"type": "volume", "source": "v", "target": "x"}])),
            "`mounts[0].target`"
        ),
        (
            "container.create",
            create("mounts", json!([{"type": "volume", "source": "../v", "target": "/x"}])),
            "`mounts[0].source`"
        ),
        (
            "container.create",
            create("mounts", Value::Array(alloc::vec![json!({"type": "volume", "source": "v", "target": "/x"}); 65])),
            "`mounts`"
        ),
        ("container.create", create("ports", json!([{"containerPort": 0}])), "`ports[0].containerPort`"),
        ("container.create", create("ports", json!([{"containerPort": 80, "hostPort": 0}])), "`ports[0].hostPort`"),
        (
            "container.create",
            create("ports", json!([{"containerPort": 80, "hostIp": "localhost"}])),
            "`ports[0].hostIp`"
        ),
        ("container.create", create("resources", json!({"cpus": 0})), "`resources.cpus`"),
        ("container.create", create("resources", json!({"memoryBytes": 1024})), "`resources.memoryBytes`"),
        ("container.create", create("resources", json!({"pidsLimit": 0})), "`resources.pidsLimit`"),
        ("container.create", create("user", json!("root; rm -rf /")), "`user`"),
        ("container.create", create("hostname", json!("-h")), "`hostname`"),
        ("container.create", create("capAdd", json!(["SYS ADMIN"])), "`capAdd[0]`"),
        ("container.create", create("capDrop", Value::Array(alloc::vec![json!("X"); 65])), "`capDrop`"),
        ("container.create", create("securityOpt", json!(["seccomp=unconfined\n"])), "`securityOpt[0]`"),
        ("container.create", create("networkMode", json!("host network")), "`networkMode`"),
        ("container.create", create("pidMode", json!("")), "`pidMode`"),
        ("container.create", create("devices", json!([{"hostPath": "dev/fuse"}])), "`devices[0].hostPath`"),
        (
            "container.create",
            create("devices", json!([{"hostPath": "/dev/fuse", "permissions": "rwx"}])),
            "`devices[0].permissions`"
        ),
        ("container.create", create("sysctls", json!({"kernel.x": "1\n"})), "`sysctls.kernel.x`"),
        // bounded numbers
        ("container.exec", with("container.exec", "timeoutMs", json!(0)), "`timeoutMs`"),
        ("container.exec", with("container.exec", "timeoutMs", json!(86_400_001u64)), "`timeoutMs`"),
        ("container.exec", with("container.exec", "maxOutputBytes", json!(4 * 1024 * 1024 + 1)), "`maxOutputBytes`"),
        ("container.exec", with("container.exec", "stdin", json!(long(64 * 1024 + 1))), "`stdin`"),
        ("container.exec", with("container.exec", "workingDir", json!("tmp")), "`workingDir`"),
        ("container.stop", with("container.stop", "graceMs", json!(600_001)), "`graceMs`"),
        ("container.exec.background.kill", json!({"execId": "x1", "signal": "term"}), "`signal`"),
        ("container.exec.background.kill", json!({"execId": "x1", "signal": "65"}), "`signal`"),
        ("container.exec.background.capture", json!({"execId": "x1", "maxBytes": 0}), "`maxBytes`"),
        ("terminal.open", with("terminal.open", "cols", json!(0)), "`cols`"),
        ("terminal.open", with("terminal.open", "rows", json!(1001)), "`rows`"),
        ("terminal.resize", json!({"sessionId": "s1", "cols": 1001, "rows": 24}), "`cols`"),
        ("terminal.input", json!({"sessionId": "s1", "data": ""}), "`data`"),
        ("terminal.input", json!({"sessionId": "s1", "data": long(64 * 1024 + 1)}), "`data`"),
        ("display.open", with("display.open", "port", json!(0)), "`port`"),
        ("images.list", json!({"filter": "a b"}), "`filter`"),
    ]
}

#[test]
fn every_rule_refuses_naming_the_field() {
    for (name, params, field) in refusals() {
        let message = invalid(name, params);
        assert!(message.contains(field), "{name}: message `{message}` does not name {field}");
        assert!(!message.contains("SECRET"), "{message}");
    }
}

#[test]
fn refusals_become_invalid_request_results() {
    let frame = json!({"type": "image.check", "id": "c-1", "params": {"image": "a b"}}).to_string();
    let err = decode_text(&frame, &Limits::DEFAULT).unwrap_err();
    assert_eq!((err.id.as_deref(), err.error.code), (Some("c-1"), ErrorCode::InvalidRequest));
    assert!(err.error.message.starts_with("image.check: `image`:"), "{}", err.error.message);
    // Without an id, the missing id is reported rather than the params.
    let err = decode_text(r#"{"type":"container.list","params":{}}"#, &Limits::DEFAULT).unwrap_err();
    assert_eq!((err.id, err.error.code), (None, ErrorCode::InvalidRequest));
    assert!(err.error.message.contains("needs an `id`"), "{}", err.error.message);
}

#[test]
fn accepted_edge_values() {
    let ok = |name: &str, params: Value| {
        if let Err(e) = decode(name, params.clone()) {
            panic!("{name} {params}: {e:?}");
        }
    };
    ok("container.start", json!({"containerId": "a".repeat(128)}));
    ok("container.start", json!({"containerId": "0123abc.def_g-h"}));
    ok("image.check", json!({"image": "registry.example:5000/team/app@sha256:0123abcd"}));
    ok("container.create", with("container.create", "user", json!("1000:1000")));
    ok("container.create", with("container.create", "ports", json!([{"containerPort": 8080, "hostIp": "::1"}])));
    ok(
        "container.create",
        with("container.create", "mounts", json!([{"type": "bind", "source": "C:\\Users\\me", "target": "/m"}])),
    );
    ok("container.exec", with("container.exec", "timeoutMs", json!(86_400_000u64)));
    ok("container.exec", with("container.exec", "maxOutputBytes", json!(0)));
    ok("container.exec.background.kill", json!({"execId": "x1", "signal": "SIGKILL"}));
    ok("container.exec.background.kill", json!({"execId": "x1", "signal": "9"}));
    ok("terminal.resize", json!({"sessionId": "s1", "cols": 1000, "rows": 1}));
    for url in ["git@github.com:acme/app.git", "ssh://git@host/a.git", "file:///srv/repo.git", "https://t@h/a"] {
        ok("container.setup", json!({"containerId": "c1", "repo": {"url": url}}));
    }
    ok(
        "container.setup",
        json!({"containerId": "c1", "files": [{"path": "/w/bin", "content": "AAEC/w==", "encoding": "base64", "mode": 493}]}),
    );
}
