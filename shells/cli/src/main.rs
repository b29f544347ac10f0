//! `cropscode`: the worker agent and its small CLI.
//!
//! Each subcommand lives in its own module and returns `Result<(), Failure>`;
//! `main` turns a failure into a message on stderr and an exit code:
//! 2 for anything the user must fix before starting (usage, configuration),
//! 1 for failures while running.

mod audit_cmd;
mod config;
mod dev;
mod flags;
mod logging;
mod login;
mod logout;
mod service;
mod status;
mod status_live;
mod worker;

use std::fmt;
use std::process::ExitCode;

use argh::FromArgs;

/// The version printed by `--version` and sent as `agentVersion`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// cropscode worker agent: connects this machine to a cropscode orchestrator
/// and runs its containers with Podman or Docker.
#[derive(FromArgs, Debug)]
struct Cli {
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Worker(worker::WorkerCommand),
    Login(login::LoginCommand),
    Logout(logout::LogoutCommand),
    Status(status::StatusCommand),
    Dev(dev::DevCommand),
    Audit(audit_cmd::AuditCommand),
    Service(service::ServiceCommand),
}

/// Why a subcommand stopped.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration: fix it and start again (exit code 2).
    Config(String),
    /// Something failed while running (exit code 1).
    Runtime(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(m) | Failure::Runtime(m) => f.write_str(m),
        }
    }
}

impl From<config::ConfigError> for Failure {
    fn from(e: config::ConfigError) -> Self {
        Failure::Config(e.to_string())
    }
}

fn main() -> ExitCode {
    // Before anything else, while this is the only thread: no child inherits a secret.
    config::take_secret_env();
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(_) => {
            eprintln!("error: arguments must be valid UTF-8");
            return ExitCode::from(2);
        }
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    // "cropscode" rather than argv[0], so usage reads the same however the binary was started.
    let rest = strs.get(1..).unwrap_or_default();
    let cli = match Cli::from_args(&["cropscode"], rest) {
        Ok(cli) => cli,
        Err(early) => {
            return if early.status.is_ok() {
                print!("{}", early.output);
                ExitCode::SUCCESS
            } else {
                eprint!("{}", early.output);
                eprintln!("Run `cropscode help` for usage.");
                ExitCode::from(2)
            };
        }
    };
    if cli.version {
        println!("cropscode {VERSION}");
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        None => {
            let help = Cli::from_args(&["cropscode"], &["help"]).err().map(|e| e.output).unwrap_or_default();
            eprint!("{help}");
            return ExitCode::from(2);
        }
        Some(Command::Worker(c)) => c.run(),
        Some(Command::Login(c)) => c.run(),
        Some(Command::Logout(c)) => c.run(),
        Some(Command::Status(c)) => c.run(),
        Some(Command::Dev(c)) => c.run(),
        Some(Command::Audit(c)) => c.run(),
        Some(Command::Service(c)) => c.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
