//! `cropscode login`: stores the worker token in `~/.cropscode/credentials.json`.
//!
//! The token is read from stdin (one line; typed without echo on a terminal)
//! or from `--token-file`, never from argv, which every user of the machine
//! can read. The file is created with mode 0600 from its first byte (its
//! directory 0700) and replaced atomically.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use argh::FromArgs;
use cropscode_core::Secret;

use crate::Failure;
use crate::config::files::{self, Credentials};
use crate::config::{Env, Key};

/// store the worker token (read from stdin) in ~/.cropscode/credentials.json
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "login")]
pub struct LoginCommand {
    /// orchestrator WebSocket URL to store with the token, wss://host/path
    #[argh(option)]
    pub url: Option<String>,
    /// read the token from this file instead of stdin
    #[argh(option)]
    pub token_file: Option<PathBuf>,
}

impl LoginCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        let env = Env::from_process();
        let home =
            env.home().ok_or_else(|| Failure::Config("HOME is not set, so ~/.cropscode cannot be found".into()))?;
        let path = home.join(".cropscode").join("credentials.json");

        if let Some(url) = &self.url {
            cropscode_runtime::validate_url(url)
                .map_err(|e| Failure::Config(format!("{} (flag --url): {e}", Key::OrchestratorWsUrl.env())))?;
        }
        let token = match &self.token_file {
            Some(file) => read_token_file(file)?,
            None => read_token_stdin()?,
        };

        // Keep the stored URL when only the token changes; a damaged or
        // too-open old file is simply replaced.
        let previous_url = files::read_credentials(&path).ok().flatten().and_then(|c| c.orchestrator_url);
        let url = self.url.map(|u| u.trim().to_owned()).or(previous_url);
        let credentials = Credentials { token: Some(token), orchestrator_url: url.clone() };
        files::write_credentials(&path, &credentials)
            .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))?;

        // On unix the file is 0600; on Windows it is guarded by the profile folder's ACL.
        let guard = if cfg!(unix) { "readable by you only" } else { "in your user profile" };
        println!("Token stored in {} ({guard}).", path.display());
        match url {
            Some(url) => println!("Orchestrator: {url}"),
            None => println!(
                "No orchestrator URL stored: run `cropscode login --url wss://…` again, or set ORCHESTRATOR_WS_URL."
            ),
        }
        println!("Start the worker with `cropscode worker`.");
        Ok(())
    }
}

fn read_token_file(file: &std::path::Path) -> Result<Secret, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Config(format!("--token-file {}: cannot read: {e}", file.display())))?;
    let trimmed = text.trim();
    if trimmed.lines().count() > 1 {
        return Err(Failure::Config(format!("--token-file {}: expected the token on a single line", file.display())));
    }
    check_token(trimmed, &format!("--token-file {}", file.display()))
}

fn read_token_stdin() -> Result<Secret, Failure> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprint!("Paste the worker token and press Enter (it will not be shown): ");
        let _ = io::stderr().flush();
    }
    let mut line = String::new();
    let read = {
        let _echo = interactive.then(EchoOff::new);
        stdin.lock().read_line(&mut line)
    };
    if interactive {
        eprintln!();
    }
    read.map_err(|e| Failure::Runtime(format!("cannot read the token from stdin: {e}")))?;
    check_token(line.trim(), "stdin")
}

fn check_token(token: &str, from: &str) -> Result<Secret, Failure> {
    if token.is_empty() {
        return Err(Failure::Config(format!(
            "no token on {from}: pipe it in (`cropscode login < token.txt`) or use --token-file"
        )));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::Config(format!("the token on {from} contains spaces or control characters")));
    }
    Ok(Secret::new(token))
}

/// Turns terminal echo off while it lives, so a pasted token is not shown.
struct EchoOff {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl EchoOff {
    #[cfg(unix)]
    fn new() -> Self {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
        }
        EchoOff { saved }
    }

    #[cfg(not(unix))]
    fn new() -> Self {
        EchoOff {}
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(io::stdin(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}
