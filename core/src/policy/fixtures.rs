//! Fixture tables per control × level, in the style of Kubernetes' Pod
//! Security Admission testdata: for every control, the weakest floor that
//! enforces it, requests that pass at that floor and requests that fail.
//!
//! Each case is a command name and the fields merged over a minimal valid
//! request of that command (for `container.create`: busybox, tenant `acme`,
//! user `1000`). Checked for every case:
//!
//! - a `fail` case is refused at `from` and at every stricter floor, naming
//!   `control`, and accepted below `from`;
//! - a `pass` case is accepted at `from` and at every weaker floor.

use alloc::vec::Vec;
use serde_json::{Value, json};

use super::{Control, Policy, PolicyConfig, SecurityFloor};
use crate::protocol::Command;
use crate::protocol::commands::ContainerCreate;

use SecurityFloor::{Baseline, None as NoFloor, Restricted};

struct Fixture {
    control: Control,
    from: SecurityFloor,
    pass: Vec<(&'static str, Value)>,
    fail: Vec<(&'static str, Value)>,
}

const CREATE: &str = "container.create";
const EXEC: &str = "container.exec";
const BACKGROUND: &str = "container.exec.background";
const TERMINAL: &str = "terminal.open";
const SETUP: &str = "container.setup";
const BUILD: &str = "image.build";

fn base(name: &str) -> Value {
    match name {
        CREATE => json!({"image": "busybox", "tenant": "acme", "user": "1000"}),
        EXEC | BACKGROUND => json!({"containerId": "dev", "command": ["true"]}),
        TERMINAL => json!({"containerId": "dev"}),
        SETUP => json!({"containerId": "dev", "files": [{"path": "/w/a", "content": "x"}]}),
        BUILD => json!({"tag": "acme/dev:1", "dockerfile": "FROM busybox\nRUN true\n"}),
        other => panic!("no base for {other}"),
    }
}

fn command(name: &str, fields: &Value) -> Command {
    let mut params = base(name);
    if let (Some(params), Some(fields)) = (params.as_object_mut(), fields.as_object()) {
        for (key, value) in fields {
            params.insert(key.clone(), value.clone());
        }
    }
    Command::decode(name, params.clone()).unwrap_or_else(|e| panic!("fixture {params} does not decode: {e:?}"))
}

fn policy(floor: SecurityFloor) -> Policy {
    let config = PolicyConfig {
        allowed_bind_roots: alloc::vec!["/srv/shared".into(), "/var/run/cropscode-shared".into()],
        protected_paths: alloc::vec!["/srv/shared/.cropscode".into()],
        ..PolicyConfig::default()
    };
    Policy::with_config(floor, config)
}

fn bind(source: &str, read_only: bool) -> Value {
    json!({"mounts": [{"type": "bind", "source": source, "target": "/mnt", "readOnly": read_only}]})
}

fn fixtures() -> Vec<Fixture> {
    alloc::vec![
        Fixture {
            control: Control::Privileged,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"privileged": false})), (EXEC, json!({"privileged": false}))],
            fail: alloc::vec![
                (CREATE, json!({"privileged": true})),
                (EXEC, json!({"privileged": true})),
                (BACKGROUND, json!({"privileged": true})),
                (BUILD, json!({"dockerfile": "FROM x\nRUN --security=insecure id\n"})),
            ],
        },
        Fixture {
            control: Control::HostNetwork,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, json!({"networkMode": "bridge"})),
                (CREATE, json!({"networkMode": "none"})),
                (CREATE, json!({"networkMode": "acme-net"})),
                (CREATE, json!({"networkMode": "slirp4netns"})),
                (BUILD, json!({"networkMode": "none"})),
                (BUILD, json!({"dockerfile": "FROM x\nRUN --network=none true\n"})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"networkMode": "host"})),
                (CREATE, json!({"networkMode": "ns:/proc/1/ns/net"})),
                (CREATE, json!({"networkMode": "slirp4netns:allow_host_loopback=true"})),
                (BUILD, json!({"networkMode": "host"})),
                (BUILD, json!({"dockerfile": "FROM x\nRUN --network=host true\n"})),
                (
                    BUILD,
                    json!({"dockerfile": "FROM x\nrun \\\n --mount=type=cache,target=/c \\\n --network=host true\n"})
                ),
                (BUILD, json!({"dockerfile": "FROM x\nONBUILD RUN --network=host true\n"})),
            ],
        },
        Fixture {
            control: Control::HostPid,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"pidMode": "private"}))],
            fail: alloc::vec![(CREATE, json!({"pidMode": "host"})), (CREATE, json!({"pidMode": "ns:/proc/1/ns/pid"}))],
        },
        Fixture {
            control: Control::HostIpc,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"ipcMode": "shareable"})), (CREATE, json!({"ipcMode": "none"}))],
            fail: alloc::vec![(CREATE, json!({"ipcMode": "host"}))],
        },
        Fixture {
            control: Control::HostUts,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"utsMode": "private"}))],
            fail: alloc::vec![(CREATE, json!({"utsMode": "host"}))],
        },
        Fixture {
            control: Control::HostUsers,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, json!({"usernsMode": "keep-id"})),
                (CREATE, json!({"usernsMode": "auto:size=65536"}))
            ],
            fail: alloc::vec![
                (CREATE, json!({"usernsMode": "host"})),
                (CREATE, json!({"usernsMode": "ns:/proc/1/ns/user"}))
            ],
        },
        Fixture {
            control: Control::HostCgroupns,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"cgroupnsMode": "private"}))],
            fail: alloc::vec![(CREATE, json!({"cgroupnsMode": "host"}))],
        },
        Fixture {
            control: Control::ContainerNamespaces,
            from: Baseline,
            pass: alloc::vec![],
            fail: alloc::vec![
                (CREATE, json!({"networkMode": "container:other"})),
                (CREATE, json!({"pidMode": "container:other"})),
                (CREATE, json!({"ipcMode": "container:other"})),
            ],
        },
        Fixture {
            control: Control::Capabilities,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, json!({"capAdd": ["CHOWN", "cap_kill", "Net_Bind_Service"]})),
                (CREATE, json!({"capDrop": ["ALL"]})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"capAdd": ["SYS_ADMIN"]})),
                (CREATE, json!({"capAdd": ["CAP_SYS_ADMIN"]})),
                (CREATE, json!({"capAdd": ["NET_RAW"]})),
                (CREATE, json!({"capAdd": ["ALL"]})),
                (CREATE, json!({"capAdd": ["CHOWN", "NET_ADMIN"]})),
            ],
        },
        Fixture {
            control: Control::Capabilities,
            from: Restricted,
            pass: alloc::vec![(CREATE, json!({"capAdd": ["NET_BIND_SERVICE"]}))],
            fail: alloc::vec![(CREATE, json!({"capAdd": ["CHOWN"]})), (CREATE, json!({"capAdd": ["SETUID"]}))],
        },
        Fixture {
            control: Control::HostPath,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, bind("/srv/shared/project", false)),
                (CREATE, bind("/srv/shared/project/src", true)),
                (CREATE, bind("/srv//shared/./x", true)),
            ],
            fail: alloc::vec![
                (CREATE, bind("/etc", true)),
                (CREATE, bind("/srv/shared-other", true)),
                (CREATE, bind("/srv", true)),
                (CREATE, bind("/srv/shared/.cropscode/token", true)),
                (CREATE, bind("/srv/shared", true)),
                (CREATE, bind("/var/lib/docker/volumes", true)),
            ],
        },
        Fixture {
            control: Control::HostPath,
            from: Restricted,
            pass: alloc::vec![],
            fail: alloc::vec![(CREATE, bind("/srv/shared/project", true))],
        },
        Fixture {
            control: Control::EngineSocket,
            from: NoFloor,
            pass: alloc::vec![],
            fail: alloc::vec![
                (CREATE, bind("/var/run/docker.sock", true)),
                (CREATE, bind("/var/run/docker.sock", false)),
                (CREATE, bind("/run/docker.sock", true)),
                (CREATE, bind("/run/podman/podman.sock", true)),
                (CREATE, bind("/run/user/1000/podman/podman.sock", true)),
                (CREATE, bind("/srv/shared/docker.sock", true)),
                (CREATE, bind("/var/run/cropscode-shared/podman.sock", true)),
                (CREATE, bind("/var/run", true)),
                (CREATE, bind("/run", false)),
                (CREATE, bind("/", true)),
                (CREATE, bind("//./pipe/docker_engine", false)),
            ],
        },
        Fixture {
            control: Control::Devices,
            from: Baseline,
            pass: alloc::vec![],
            fail: alloc::vec![
                (CREATE, json!({"devices": [{"hostPath": "/dev/fuse"}]})),
                (CREATE, json!({"devices": [{"hostPath": "/dev/sda", "permissions": "r"}]})),
                (BUILD, json!({"dockerfile": "FROM x\nRUN --device=/dev/fuse true\n"})),
            ],
        },
        Fixture {
            control: Control::Seccomp,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"securityOpt": ["seccomp=builtin"]}))],
            fail: alloc::vec![
                (CREATE, json!({"securityOpt": ["seccomp=unconfined"]})),
                (CREATE, json!({"securityOpt": ["seccomp:unconfined"]})),
                (CREATE, json!({"securityOpt": ["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]})),
            ],
        },
        Fixture {
            control: Control::Apparmor,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"securityOpt": ["apparmor=docker-default"]}))],
            fail: alloc::vec![(CREATE, json!({"securityOpt": ["apparmor=unconfined"]}))],
        },
        Fixture {
            control: Control::SeLinux,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, json!({"securityOpt": ["label=level:s0:c100,c200"]})),
                (CREATE, json!({"securityOpt": ["label=type:container_t"]})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"securityOpt": ["label=disable"]})),
                (CREATE, json!({"securityOpt": ["label:disable"]})),
                (CREATE, json!({"securityOpt": ["label=type:spc_t"]})),
                (CREATE, json!({"securityOpt": ["label=user:system_u"]})),
            ],
        },
        Fixture {
            control: Control::ProcMount,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"securityOpt": ["mask=/proc/acpi"]}))],
            fail: alloc::vec![
                (CREATE, json!({"securityOpt": ["systempaths=unconfined"]})),
                (CREATE, json!({"securityOpt": ["unmask=ALL"]})),
                (CREATE, json!({"securityOpt": ["proc-opts=hidepid=0"]})),
                (CREATE, json!({"securityOpt": ["writable-cgroups=true"]})),
            ],
        },
        Fixture {
            control: Control::SecurityOpt,
            from: Baseline,
            pass: alloc::vec![(CREATE, json!({"securityOpt": ["no-new-privileges"]}))],
            fail: alloc::vec![(CREATE, json!({"securityOpt": ["something-new=1"]}))],
        },
        Fixture {
            control: Control::Sysctls,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, json!({"sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"}})),
                (CREATE, json!({"sysctls": {"net/ipv4/ping_group_range": "0 2147483647"}})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"sysctls": {"kernel.msgmax": "65536"}})),
                (CREATE, json!({"sysctls": {"kernel.core_pattern": "|/tmp/x"}})),
                (CREATE, json!({"sysctls": {"net.ipv4.ip_forward": "1"}})),
            ],
        },
        Fixture {
            control: Control::HostPorts,
            from: Baseline,
            pass: alloc::vec![
                (CREATE, json!({"ports": [{"containerPort": 80}]})),
                (CREATE, json!({"ports": [{"containerPort": 80, "hostPort": 8080, "hostIp": "127.0.0.1"}]})),
                (CREATE, json!({"ports": [{"containerPort": 80, "hostPort": 1024}]})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"ports": [{"containerPort": 80, "hostPort": 80}]})),
                (CREATE, json!({"ports": [{"containerPort": 22, "hostPort": 22, "hostIp": "127.0.0.1"}]})),
            ],
        },
        Fixture {
            control: Control::RunAsRoot,
            from: Restricted,
            pass: alloc::vec![
                (CREATE, json!({"user": "1000:1000"})),
                (CREATE, json!({"user": "65534:staff"})),
                (EXEC, json!({"user": "1000"})),
                (TERMINAL, json!({"user": "1000:0"})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"user": "root"})),
                (CREATE, json!({"user": "0"})),
                (CREATE, json!({"user": "0:1000"})),
                (CREATE, json!({"user": "dev"})),
                (EXEC, json!({"user": "root"})),
                (EXEC, json!({"user": "0"})),
                (BACKGROUND, json!({"user": "0:0"})),
                (TERMINAL, json!({"user": "root"})),
            ],
        },
        Fixture {
            control: Control::AllowPrivilegeEscalation,
            from: Restricted,
            pass: alloc::vec![
                (CREATE, json!({"securityOpt": ["no-new-privileges=true"]})),
                (SETUP, json!({"files": [{"path": "/w/bin/run", "content": "x", "mode": 493}]})),
            ],
            fail: alloc::vec![
                (CREATE, json!({"securityOpt": ["no-new-privileges=false"]})),
                (SETUP, json!({"files": [{"path": "/w/bin/su", "content": "x", "mode": 2541}]})),
                (SETUP, json!({"files": [{"path": "/w/bin/sg", "content": "x", "mode": 1512}]})),
            ],
        },
    ]
}

fn verdict(floor: SecurityFloor, name: &str, fields: &Value) -> Result<(), Control> {
    policy(floor).enforce(command(name, fields)).map(|_| ()).map_err(|refusal| refusal.control)
}

#[test]
fn every_control_has_fixtures() {
    let covered: Vec<Control> = fixtures().iter().map(|f| f.control).collect();
    for control in Control::ALL {
        // `volumes` is judged on the scoped name's length only; see `restricted_forces_its_settings`.
        if control != Control::Volumes {
            assert!(covered.contains(&control), "no fixture for `{control}`");
        }
    }
}

#[test]
fn fixtures_pass_and_fail_at_their_levels() {
    for fixture in fixtures() {
        for (name, fields) in &fixture.fail {
            for floor in SecurityFloor::ALL {
                let got = verdict(floor, name, fields);
                if floor >= fixture.from {
                    assert_eq!(got, Err(fixture.control), "{name} {fields} at `{floor}`");
                } else {
                    assert_eq!(got, Ok(()), "{name} {fields} at `{floor}` (below `{}`)", fixture.from);
                }
            }
        }
        for (name, fields) in &fixture.pass {
            for floor in SecurityFloor::ALL.into_iter().filter(|f| *f <= fixture.from) {
                assert_eq!(verdict(floor, name, fields), Ok(()), "{name} {fields} at `{floor}` ({})", fixture.control);
            }
        }
    }
}

#[test]
fn refusals_reach_the_wire_as_forbidden_naming_the_control() {
    let refusal = policy(Baseline).enforce(command(CREATE, &json!({"privileged": true}))).unwrap_err();
    let wire = refusal.to_wire();
    assert_eq!(wire.code, crate::protocol::ErrorCode::Forbidden);
    assert_eq!(
        wire.message,
        "security floor `baseline`, control `privileged`: privileged containers are not allowed (`privileged`)"
    );
    assert_eq!(wire.refusal.as_ref().map(|r| r.control.as_str()), Some("privileged"));
    assert_eq!(wire.refusal.map(|r| r.reason).as_deref(), Some("privileged containers are not allowed (`privileged`)"));
    let other = crate::protocol::WireError::new(
        crate::protocol::ErrorCode::NotFound,
        "security floor `x`, control `privileged`: y",
    );
    assert_eq!(other.refusal.map(|r| r.control), None, "only the floor's own errors are refusals");
}

fn create(fields: Value) -> ContainerCreate {
    match command(CREATE, &fields) {
        Command::ContainerCreate(c) => c,
        _ => unreachable!(),
    }
}

#[test]
fn restricted_forces_its_settings() {
    let request = create(json!({
        "tenant": "team@acme.io",
        "mounts": [{"type": "volume", "source": "home", "target": "/home/dev"}],
        "capDrop": ["NET_RAW"],
        "resources": {"pidsLimit": 64},
    }));
    let constraints = policy(Restricted).judge_create(&request).expect("accepted");
    assert!(!constraints.non_root_image_user, "the request names a user");
    let Ok(Command::ContainerCreate(forced)) = policy(Restricted).enforce(Command::ContainerCreate(request.clone()))
    else {
        panic!()
    };
    assert_eq!(forced.cap_drop, ["NET_RAW", "ALL"]);
    assert_eq!(forced.security_opt, ["no-new-privileges"]);
    let resources = forced.resources.clone().unwrap();
    assert_eq!(resources.pids_limit, Some(64), "a request's own limit stays");
    assert_eq!(resources.memory_bytes, Some(PolicyConfig::DEFAULT_MEMORY_BYTES));
    assert_eq!(forced.mounts[0].source, "cs-team_aacme_dio.home");
    assert_eq!(forced.mounts[0].source, super::tenant_volume_name("team@acme.io", "home"));

    // Idempotent: applying twice changes nothing more.
    let mut again = forced.clone();
    constraints.apply(&mut again);
    assert_eq!(again, forced);

    // No user: the engine must check the image's.
    let mut anonymous = request.clone();
    anonymous.user = None;
    assert!(policy(Restricted).judge_create(&anonymous).unwrap().non_root_image_user);

    // Baseline and none force nothing.
    for floor in [NoFloor, Baseline] {
        let Ok(Command::ContainerCreate(same)) = policy(floor).enforce(Command::ContainerCreate(request.clone()))
        else {
            panic!()
        };
        assert_eq!(same, request, "`{floor}` changes nothing");
    }
}

#[test]
fn restricted_refuses_volume_names_too_long_to_scope() {
    let long = "v".repeat(128);
    let tenant = "t".repeat(128);
    let request = create(json!({"tenant": tenant, "mounts": [{"type": "volume", "source": long, "target": "/v"}]}));
    assert_eq!(policy(Restricted).judge_create(&request).unwrap_err().control, Control::Volumes);
    assert!(policy(Baseline).judge_create(&request).is_ok());
}

#[test]
fn the_users_engines_report_are_judged_under_restricted() {
    let restricted = policy(Restricted);
    for user in ["", "  ", "root", "0", "0:0", "admin"] {
        assert_eq!(restricted.judge_user(user).unwrap_err().control, Control::RunAsRoot, "{user:?}");
    }
    for user in ["1000", "1000:1000", "65534"] {
        assert_eq!(restricted.judge_user(user), Ok(()), "{user:?}");
    }
    for floor in [NoFloor, Baseline] {
        assert_eq!(policy(floor).judge_user(""), Ok(()));
    }
}

#[test]
fn a_resolver_judges_where_a_symlink_really_points() {
    fn resolve(path: &str) -> Option<alloc::string::String> {
        (path == "/srv/shared/link").then(|| "/var/run/docker.sock".into())
    }
    let request = create(bind("/srv/shared/link", true));
    assert!(policy(Baseline).judge_create(&request).is_ok(), "lexically under an allowed root");
    let resolved = policy(Baseline).with_host_path_resolver(resolve);
    assert_eq!(resolved.judge_create(&request).unwrap_err().control, Control::EngineSocket);
}

#[test]
fn the_floor_cannot_be_changed_by_a_request() {
    let params = json!({"image": "busybox", "tenant": "acme", "privileged": true, "securityFloor": "none",
        "security_floor": "none", "SECURITY_FLOOR": "none"});
    let command = Command::decode(CREATE, params).expect("unknown fields are ignored");
    assert_eq!(policy(Baseline).enforce(command).unwrap_err().control, Control::Privileged);
}

#[test]
fn floors_parse_exactly() {
    for floor in SecurityFloor::ALL {
        assert_eq!(floor.as_str().parse::<SecurityFloor>(), Ok(floor));
    }
    for bad in ["", "Baseline", "strict", "none ", "off"] {
        assert!(SecurityFloor::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(SecurityFloor::default(), Baseline);
}
