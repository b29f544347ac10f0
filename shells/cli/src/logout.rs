//! `cropscode logout`: removes `~/.cropscode/credentials.json`.
//!
//! `worker.json` stays: it names this machine at the orchestrator, and a later
//! `login` with a new token re-registers under the same id.

use std::io;

use argh::FromArgs;

use crate::Failure;
use crate::config::Env;

/// remove the stored worker token (~/.cropscode/credentials.json)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logout")]
pub struct LogoutCommand {}

impl LogoutCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        let env = Env::from_process();
        let home =
            env.home().ok_or_else(|| Failure::Config("HOME is not set, so ~/.cropscode cannot be found".into()))?;
        let path = home.join(".cropscode").join("credentials.json");
        match std::fs::remove_file(&path) {
            Ok(()) => println!("Removed {}.", path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!("Not logged in ({} does not exist).", path.display())
            }
            Err(e) => return Err(Failure::Runtime(format!("cannot remove {}: {e}", path.display()))),
        }
        if env.get("WORKER_TOKEN").is_some() {
            println!("Note: WORKER_TOKEN is still set in this environment.");
        }
        Ok(())
    }
}
