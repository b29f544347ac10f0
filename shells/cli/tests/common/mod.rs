//! Runs the real `cropscode` binary with a throwaway HOME and a clean environment.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A long, distinctive token, so a search for it cannot miss a leak.
pub const TOKEN: &str = "tok_CLI_s3cr3t_0a1b2c3d4e5f";

/// A temporary HOME, removed when dropped.
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    pub fn new(tag: &str) -> Home {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cropscode-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Home { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes `~/.cropscode/<name>`.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(".cropscode").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// `cropscode <args>` with only PATH and HOME set, plus `env`.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_with_stdin(args, env, None)
    }

    /// Starts `cropscode <args>`, lets it run for `duration`, stops it with SIGTERM.
    pub fn run_for(&self, args: &[&str], env: &[(&str, &str)], duration: std::time::Duration) -> Run {
        let mut child = self.command(args, env).stdin(Stdio::null()).spawn().expect("spawn cropscode");
        std::thread::sleep(duration);
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        Run::from(child.wait_with_output().expect("wait for cropscode"))
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cropscode"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            // Keeps a fleet machine's /etc/cropscode/agent.yaml out of these tests.
            .env("AGENT_MODE", "byom")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run_with_stdin(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args, env);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("spawn cropscode");
        if let Some(input) = stdin {
            // The program may refuse and exit before reading stdin (e.g. a bad URL):
            // a broken pipe then is its answer, not a harness failure.
            match child.stdin.take().expect("piped stdin").write_all(input.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.expect("write stdin"),
            }
        }
        Run::from(child.wait_with_output().expect("wait for cropscode"))
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a run printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The `status` line for `key`, e.g. `WORKER_NAME  pi  (flag --name)`.
    pub fn line(&self, key: &str) -> String {
        let prefix = format!("{key} ");
        self.stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {key} line in:\n{}", self.stdout))
            .to_owned()
    }

    pub fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "expected success:\n{}", self.all());
        self
    }
}

#[cfg(unix)]
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
