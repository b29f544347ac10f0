//! Files written through the archive upload arrive byte for byte, with owner and mode,
//! without passing through a shell.

mod common;

use common::{TestEngine, Which};
use cropscode_engine_api::{ExecLimits, ExecSpec, Owner, TarBuilder};

engine_test!(archive_upload, async |t: &TestEngine| {
    let id = t.running_container().await;
    let e = &t.engine;
    let tricky = "line one\n$(touch /tmp/pwned) `id` 'quotes' \"double\"\n\u{1F980} non-ASCII\n";
    let mut files = TarBuilder::new();
    files.file("CLAUDE.md", tricky.as_bytes(), 0o644).unwrap();
    files.file_owned("work/scripts/run.sh", b"#!/bin/sh\necho ran\n", 0o750, Owner { uid: 1000, gid: 1000 }).unwrap();
    e.write_files(&id, "/home/user", files).await.expect("upload");

    let cat = ExecSpec { cmd: vec!["cat".into(), "/home/user/CLAUDE.md".into()], ..ExecSpec::default() };
    let out = e.exec(&id, &cat, ExecLimits::default()).await.expect("cat");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), tricky);
    assert_eq!(out.exit_code, 0);

    let check = ExecSpec {
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "test ! -e /tmp/pwned && stat -c '%u %a' /home/user/work /home/user/work/scripts/run.sh && /home/user/work/scripts/run.sh".into(),
        ],
        ..ExecSpec::default()
    };
    let out = e.exec(&id, &check, ExecLimits::default()).await.expect("stat");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000 755\n1000 750\nran\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Into a directory that does not exist: Docker refuses (404), Podman creates it.
    let mut one = TarBuilder::new();
    one.file("x", b"x", 0o644).unwrap();
    let result = e.write_files(&id, "/no/such/dir", one).await;
    match t.which {
        Which::Docker => assert!(result.expect_err("missing dir").is_not_found()),
        Which::Podman => {
            result.expect("podman creates the directory");
            let cat = ExecSpec { cmd: vec!["cat".into(), "/no/such/dir/x".into()], ..ExecSpec::default() };
            assert_eq!(e.exec(&id, &cat, ExecLimits::default()).await.expect("cat").stdout, b"x");
        }
    }
});
