//! Property tests of the security floor over arbitrary requests built from
//! the values each control cares about: the levels are ordered, refusals
//! always name a control, and what `restricted` forces is always there.

use cropscode_core::policy::{Control, Policy, PolicyConfig, SecurityFloor};
use cropscode_core::protocol::commands::MountType;
use cropscode_core::protocol::{Command, WireError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn pick(values: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::weighted(0.5, proptest::sample::select(values))
}

fn subset(values: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(proptest::sample::select(values), 0..=max)
}

const NETWORKS: &[&str] = &["bridge", "none", "host", "acme-net", "container:x", "ns:/proc/1/ns/net", "pasta"];
const MODES: &[&str] = &["private", "host", "container:x", "shareable", "auto", "keep-id", "ns:/x"];
const CAPS: &[&str] = &["CHOWN", "NET_BIND_SERVICE", "SYS_ADMIN", "NET_RAW", "cap_kill", "ALL", "SETUID"];
const OPTS: &[&str] = &[
    "no-new-privileges",
    "no-new-privileges=false",
    "seccomp=unconfined",
    "seccomp=builtin",
    "apparmor=unconfined",
    "apparmor=docker-default",
    "label=disable",
    "label=level:s0",
    "systempaths=unconfined",
    "mask=/proc/x",
    "weird",
];
const SYSCTLS: &[&str] = &["net.ipv4.ip_unprivileged_port_start", "kernel.msgmax", "net.ipv4.ip_forward"];
const USERS: &[&str] = &["root", "0", "1000", "1000:1000", "dev", "0:0", "65534:staff"];
const BINDS: &[&str] = &[
    "/srv/shared/x",
    "/srv/shared",
    "/etc",
    "/var/run/docker.sock",
    "/run",
    "/",
    "/data/podman.sock",
    "/var/lib/docker",
];
const SOCKETS: &[&str] = &["/var/run/docker.sock", "/run", "/", "/data/podman.sock"];

fn create() -> impl Strategy<Value = Value> {
    (
        (any::<bool>(), pick(NETWORKS), pick(MODES), pick(MODES), pick(MODES), pick(MODES)),
        (subset(CAPS, 3), subset(CAPS, 2), subset(OPTS, 3), subset(SYSCTLS, 2)),
        (
            proptest::collection::vec(proptest::option::of(1u16..=65535), 0..3),
            proptest::collection::vec((any::<bool>(), proptest::sample::select(BINDS), any::<bool>()), 0..3),
            pick(USERS),
            any::<bool>(),
            proptest::option::of(1u32..100_000),
        ),
    )
        .prop_map(|((privileged, network, pid, ipc, userns, cgroupns), (add, drop, opts, sysctls), rest)| {
            let (ports, mounts, user, device, pids) = rest;
            let mut p = Map::new();
            p.insert("image".into(), json!("busybox"));
            p.insert("tenant".into(), json!("acme"));
            p.insert("privileged".into(), json!(privileged));
            for (key, mode) in [
                ("networkMode", network),
                ("pidMode", pid),
                ("ipcMode", ipc),
                ("usernsMode", userns),
                ("cgroupnsMode", cgroupns),
            ] {
                if let Some(mode) = mode {
                    p.insert(key.into(), json!(mode));
                }
            }
            p.insert("capAdd".into(), json!(add));
            p.insert("capDrop".into(), json!(drop));
            p.insert("securityOpt".into(), json!(opts));
            p.insert("sysctls".into(), Value::Object(sysctls.iter().map(|k| (k.to_string(), json!("1"))).collect()));
            let ports: Vec<Value> = ports
                .into_iter()
                .map(|host| match host {
                    Some(h) => json!({"containerPort": 80, "hostPort": h}),
                    None => json!({"containerPort": 80}),
                })
                .collect();
            p.insert("ports".into(), json!(ports));
            let mounts: Vec<Value> = mounts
                .into_iter()
                .enumerate()
                .map(|(i, (bind, path, ro))| {
                    if bind {
                        json!({"type": "bind", "source": path, "target": format!("/m{i}"), "readOnly": ro})
                    } else {
                        json!({"type": "volume", "source": format!("vol{i}"), "target": format!("/v{i}")})
                    }
                })
                .collect();
            p.insert("mounts".into(), json!(mounts));
            if let Some(user) = user {
                p.insert("user".into(), json!(user));
            }
            if device {
                p.insert("devices".into(), json!([{"hostPath": "/dev/fuse"}]));
            }
            if let Some(pids) = pids {
                p.insert("resources".into(), json!({"pidsLimit": pids}));
            }
            Value::Object(p)
        })
}

fn exec() -> impl Strategy<Value = (&'static str, Value)> {
    (
        proptest::sample::select(&["container.exec", "container.exec.background", "terminal.open"][..]),
        any::<bool>(),
        pick(USERS),
    )
        .prop_map(|(name, privileged, user)| {
            let mut p = json!({"containerId": "dev", "command": ["sh"]});
            if name != "terminal.open" {
                p["privileged"] = json!(privileged);
            }
            if let Some(user) = user {
                p["user"] = json!(user);
            }
            (name, p)
        })
}

fn policy(floor: SecurityFloor) -> Policy {
    let config = PolicyConfig { allowed_bind_roots: vec!["/srv/shared".into(), "/data".into()], ..Default::default() };
    Policy::with_config(floor, config)
}

fn decode(name: &str, params: &Value) -> Command {
    Command::decode(name, params.clone()).unwrap_or_else(|e| panic!("{name} {params}: {e:?}"))
}

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![create().prop_map(|p| decode("container.create", &p)), exec().prop_map(|(name, p)| decode(name, &p)),]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// What passes a floor passes every weaker one.
    #[test]
    fn levels_are_ordered(command in any_command()) {
        let verdicts: Vec<bool> =
            SecurityFloor::ALL.iter().map(|floor| policy(*floor).judge(&command).is_ok()).collect();
        // ALL is weakest first: once refused, refused at every stricter level.
        for pair in verdicts.windows(2) {
            prop_assert!(pair[0] || !pair[1], "{command:?}: {verdicts:?}");
        }
    }

    /// Every refusal names a known control, and the wire message names it back.
    #[test]
    fn refusals_name_a_control(command in any_command()) {
        for floor in SecurityFloor::ALL {
            if let Err(refusal) = policy(floor).enforce(command.clone()) {
                prop_assert!(Control::ALL.contains(&refusal.control), "{refusal:?}");
                prop_assert_eq!(refusal.floor, floor);
                let wire = refusal.to_wire();
                prop_assert_eq!(wire.code.as_str(), "forbidden");
                prop_assert_eq!(wire.refusal.as_ref().map(|r| r.control), Some(refusal.control));
                let json = serde_json::to_string(&wire).unwrap();
                let back: WireError = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(back.refusal.map(|r| r.control), Some(refusal.control));
                prop_assert!(floor != SecurityFloor::None || refusal.control == Control::EngineSocket, "{refusal:?}");
            }
        }
    }

    /// An accepted create comes out with what `restricted` forces; enforcing is idempotent.
    #[test]
    fn restricted_always_forces_its_settings(params in create()) {
        let policy = policy(SecurityFloor::Restricted);
        if let Ok(enforced) = policy.enforce(decode("container.create", &params)) {
            let Command::ContainerCreate(c) = &enforced else { panic!() };
            prop_assert!(c.cap_drop.iter().any(|cap| cap == "ALL"));
            prop_assert!(c.security_opt.iter().any(|o| o == "no-new-privileges"));
            let resources = c.resources.clone().unwrap_or_default();
            prop_assert!(resources.pids_limit.is_some() && resources.memory_bytes.is_some());
            prop_assert!(!c.privileged);
            prop_assert!(c.mounts.iter().all(|m| m.kind == MountType::Volume && m.source.starts_with("cs-acme.")));
            prop_assert!(c.cap_add.iter().all(|cap| cap.eq_ignore_ascii_case("NET_BIND_SERVICE")));
            let again = policy.enforce(enforced.clone());
            prop_assert_eq!(again.as_ref(), Ok(&enforced));
        }
    }

    /// The engine sockets, and the directories that hold them, are refused at every floor.
    #[test]
    fn engine_sockets_are_never_mounted(
        params in create(),
        socket in proptest::sample::select(SOCKETS),
        read_only in any::<bool>(),
    ) {
        let mut params = params;
        params["mounts"] = json!([{"type": "bind", "source": socket, "target": "/s", "readOnly": read_only}]);
        let command = decode("container.create", &params);
        for floor in SecurityFloor::ALL {
            let refusal = policy(floor).judge(&command).expect_err("a socket mount is refused");
            prop_assert_eq!(refusal.control, Control::EngineSocket);
        }
    }
}
