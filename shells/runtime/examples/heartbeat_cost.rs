//! Prints what one heartbeat refresh costs on this machine.
//!
//! `cargo run --release -p cropscode-runtime --example heartbeat_cost [DATA_DIR]`

use std::time::{Duration, Instant};

use cropscode_core::SystemProbe;
use cropscode_runtime::{SysProbe, system_info};

fn main() -> std::io::Result<()> {
    let data_dir = std::env::args_os().nth(1).map_or_else(std::env::temp_dir, Into::into);
    let started = Instant::now();
    let mut probe = SysProbe::new(&data_dir)?;
    println!("setup (system, disk list): {:?}", started.elapsed());
    println!("{:?}", system_info());
    println!("data dir {} is on {:?}", data_dir.display(), probe.data_disk_mount_point());

    std::thread::sleep(Duration::from_millis(200));
    let rounds = 1_000u32;
    let started = Instant::now();
    let mut figures = probe.heartbeat();
    for _ in 1..rounds {
        figures = probe.heartbeat();
    }
    println!("one heartbeat refresh: {:?} (mean of {rounds})", started.elapsed() / rounds);
    println!("{figures:?}");
    Ok(())
}
