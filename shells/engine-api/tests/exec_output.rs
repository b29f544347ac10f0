//! exec: stdout and stderr apart, exit codes, the output cap with its truncated flag, the
//! timeout, and a two-way attach over an upgraded connection.

mod common;

use std::time::{Duration, Instant};

use common::TestEngine;
use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{ExecLimits, ExecSpec, OutputKind, OutputStream};
use futures_lite::AsyncWriteExt;

fn sh(script: &str) -> ExecSpec {
    ExecSpec { cmd: vec!["sh".into(), "-c".into(), script.into()], ..ExecSpec::default() }
}

engine_test!(exec_output, async |t: &TestEngine| {
    let id = t.running_container().await;
    let e = &t.engine;
    let limits = ExecLimits::default();

    let out = e.exec(&id, &sh("echo out; echo err >&2; echo more"), limits).await.expect("exec");
    assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\nmore\n"[..], &b"err\n"[..]));
    assert_eq!(out.exit_code, 0);
    assert!(!out.truncated);

    let out = e.exec(&id, &sh("exit 42"), limits).await.expect("exec exit 42");
    assert_eq!(out.exit_code, 42);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());

    let missing = e.exec(&id, &ExecSpec { cmd: vec!["/no/such/program".into()], ..ExecSpec::default() }, limits).await;
    match missing {
        Ok(out) => assert_ne!(out.exit_code, 0, "{out:?}"),
        Err(err) => assert_ne!(err.code(), ErrorCode::Internal, "{err:?}"),
    }

    // Environment, working directory and user.
    let spec = ExecSpec {
        env: vec!["GREETING=hi there".into()],
        working_dir: Some("/tmp".into()),
        user: Some("1000".into()),
        ..sh("echo \"$GREETING\"; pwd; id -u")
    };
    let out = e.exec(&id, &spec, limits).await.expect("exec with env");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi there\n/tmp\n1000\n");

    // 200 KB on each stream, 1000 bytes kept of each; the exit code still arrives.
    let capped = ExecLimits { output_limit: 1000, ..limits };
    let script = "i=0; while [ $i -lt 2000 ]; do echo 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklm; echo EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE >&2; i=$((i+1)); done; exit 3";
    let out = e.exec(&id, &sh(script), capped).await.expect("exec capped");
    assert_eq!((out.stdout.len(), out.stderr.len()), (1000, 1000));
    assert!(out.truncated);
    assert_eq!(out.exit_code, 3);
    assert!(out.stdout.starts_with(b"0123456789abcdef"));
    assert!(out.stderr.iter().all(|&b| b == b'E' || b == b'\n'));

    // Output exactly at the cap is not truncated.
    let out = e.exec(&id, &sh("printf 1234567890"), ExecLimits { output_limit: 10, ..limits }).await.expect("exact");
    assert_eq!((out.stdout.as_slice(), out.truncated), (&b"1234567890"[..], false));

    // Timeout.
    let started = Instant::now();
    let slow = ExecLimits { timeout: Duration::from_millis(700), ..limits };
    let err = e.exec(&id, &sh("sleep 5"), slow).await.expect_err("times out");
    assert_eq!(err.code(), ErrorCode::Timeout, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // The client still works after abandoning an exec.
    let out = e.exec(&id, &sh("echo after"), limits).await.expect("exec after timeout");
    assert_eq!(out.stdout, b"after\n");
});

engine_test!(exec_attach_writes_stdin, async |t: &TestEngine| {
    let id = t.running_container().await;
    let e = &t.engine;
    let spec = ExecSpec { attach_stdin: true, ..sh("tr a-z A-Z; echo done >&2") };
    let exec_id = e.create_exec(&id, &spec).await.expect("create exec");
    let mut io = e.attach_exec(&exec_id, false).await.expect("attach");
    io.write_all(b"hello through the upgraded connection\n").await.expect("write stdin");
    io.flush().await.expect("flush");
    io.close().await.expect("close stdin");
    let mut output = OutputStream::from_upgraded(io, false);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let reading = async {
        while let Some(chunk) = output.next().await {
            let chunk = chunk.expect("output");
            match chunk.kind {
                OutputKind::Stdout => stdout.extend_from_slice(&chunk.data),
                OutputKind::Stderr => stderr.extend_from_slice(&chunk.data),
            }
        }
    };
    futures_lite::future::or(reading, async {
        smol::Timer::after(Duration::from_secs(10)).await;
        panic!("attach output did not end");
    })
    .await;
    assert_eq!(String::from_utf8_lossy(&stdout), "HELLO THROUGH THE UPGRADED CONNECTION\n");
    assert_eq!(stderr, b"done\n");
    let code = e.exec_exit_code(&exec_id).await.expect("exit code");
    assert_eq!(code, 0);
});
