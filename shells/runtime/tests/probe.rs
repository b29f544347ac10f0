//! The system probe reports plausible figures, cheaply refreshed.

use std::time::{Duration, Instant};

use cropscode_core::SystemProbe;
use cropscode_runtime::{Agent, GatewayUrl, SysProbe, system_info};

#[test]
fn registration_figures_are_real() {
    let info = system_info();
    assert!(!info.hostname.is_empty());
    assert!(["linux", "darwin", "windows"].contains(&info.platform.as_str()) || !info.platform.is_empty());
    assert_ne!(info.platform, "macos");
    assert_eq!(info.arch, std::env::consts::ARCH);
    assert!(info.cpu_count >= 1);
    assert!(info.memory_total > 64 * 1024 * 1024, "{} bytes of RAM", info.memory_total);
}

#[test]
fn heartbeat_figures_are_plausible() {
    let data_dir = std::env::temp_dir().join("cropscode-probe-test").join("not-created");
    let mut probe = SysProbe::new(&data_dir).expect("probe");
    let total = system_info().memory_total;

    // Let some CPU time pass so usage has an interval to cover.
    std::thread::sleep(Duration::from_millis(250));
    let rounds = 20u32;
    let started = Instant::now();
    let mut last = probe.heartbeat();
    for _ in 1..rounds {
        last = probe.heartbeat();
    }
    let per_heartbeat = started.elapsed() / rounds;
    // A figure for the log, not an assertion: machines differ.
    println!("one heartbeat refresh: {per_heartbeat:?} (disk: {:?})", probe.data_disk_mount_point());

    assert!((0.0..=100.0).contains(&last.cpu_usage), "cpu {}", last.cpu_usage);
    assert!(last.memory_free > 0 && last.memory_free <= total, "{} free of {total}", last.memory_free);
    if probe.data_disk_mount_point().is_some() {
        let (disk_total, disk_free) = (last.disk_total.unwrap(), last.disk_free.unwrap());
        assert!(disk_total > 0 && disk_free <= disk_total, "{disk_free} free of {disk_total}");
    } else {
        assert_eq!((last.disk_total, last.disk_free), (None, None));
    }
    assert_eq!(last.containers_running, 0);
    assert_eq!((last.gateway_status.as_deref(), last.gateway_status_detail.as_deref()), (None, None));
    // The running count is the engine's (`Engine::containers_running`): see
    // `agent_wiring.rs`, where the heartbeat carries a custom engine's count.
}

#[test]
fn heartbeats_carry_the_gateway_fields_only_with_a_gateway() {
    let data_dir = std::env::temp_dir().join(format!("cropscode-probe-gateway-{}", std::process::id()));
    // No gateway configured and none offered: the fields stay omitted.
    let agent = Agent::builder("ws://127.0.0.1:9/worker", cropscode_core::Secret::new("t"), &data_dir)
        .build(cropscode_core::dispatch::NoEngine)
        .expect("agent");
    let mut probe = SysProbe::new(&data_dir).expect("probe").with_gateway(agent.gateway().clone());
    let beat = probe.heartbeat();
    assert_eq!((beat.gateway_status.as_deref(), beat.gateway_status_detail.as_deref()), (None, None));

    // With one, before its first probe (the agent is not running): `unknown`.
    let agent = Agent::builder("ws://127.0.0.1:9/worker", cropscode_core::Secret::new("t"), &data_dir)
        .gateway_url(GatewayUrl::parse("tcp://127.0.0.1:9").unwrap())
        .build(cropscode_core::dispatch::NoEngine)
        .expect("agent");
    let mut probe = SysProbe::new(&data_dir).expect("probe").with_gateway(agent.gateway().clone());
    let beat = probe.heartbeat();
    assert_eq!(
        (beat.gateway_status.as_deref(), beat.gateway_status_detail.as_deref()),
        (Some("unknown"), Some("not probed yet"))
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
