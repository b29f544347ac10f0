//! A [`ServicePlan`]: the files, commands and service-manager calls of one action, as
//! values. Printing it is `--dry-run`; [`ServicePlan::apply`] carries it out, all or
//! nothing: every target directory is checked for writing first, files are written to
//! a temporary name and renamed, and on the first failing step what was done is undone
//! in reverse order (files restored or removed, directories it created removed, then
//! the plan's `after_undo` commands, e.g. `systemctl daemon-reload`).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::windows::ScmStep;
use crate::Failure;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `contents` to `path` with `mode` (unix), creating missing parent directories.
    Write { path: PathBuf, mode: u32, contents: String },
    /// Create a directory when it is missing; kept by uninstall (it is the worker's data).
    MakeDir { path: PathBuf, mode: u32 },
    /// Remove `path` if it exists, then its parent directories while they are empty, up to
    /// (not including) `keep`.
    Remove { path: PathBuf, keep: PathBuf },
    /// Run a command; `tolerate_failure` for steps like "stop what may not be running"; `undo`
    /// is run when a later step fails, or this one (`enable --now` may have enabled, then failed
    /// to start).
    Run { argv: Vec<String>, tolerate_failure: bool, undo: Option<Vec<String>> },
    /// A call to Windows' service control manager.
    Scm(ScmStep),
    /// Something the user should know.
    Note(String),
}

/// The steps of one action, and how to explain a lack of rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// What this is, e.g. "install (systemd, fleet: system-wide unit)".
    pub title: String,
    /// In order.
    pub steps: Vec<Step>,
    /// Said when a target directory is not writable, e.g. "run it as root (sudo …)".
    pub rights_hint: String,
    /// Run after an undo, when a command of the plan had run (e.g. `systemctl daemon-reload`).
    pub after_undo: Vec<Vec<String>>,
}

impl ServicePlan {
    /// The same plan with every path under `root` (`/etc/x` → `root/etc/x`).
    pub fn under_root(mut self, root: &Path) -> ServicePlan {
        let reroot = |path: &Path| -> PathBuf {
            let rel: PathBuf =
                path.components().filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_))).collect();
            root.join(rel)
        };
        for step in &mut self.steps {
            match step {
                Step::Write { path, .. } | Step::MakeDir { path, .. } => *path = reroot(path),
                Step::Remove { path, keep } => {
                    *path = reroot(path);
                    // Everything --root holds was made by the plan, so prune up to the root itself.
                    *keep = root.to_path_buf();
                }
                _ => {}
            }
        }
        self
    }

    /// Carries the plan out; commands and service-manager calls only when `live` (not under --root).
    pub fn apply(&self, live: bool) -> Result<(), Failure> {
        self.check_rights()?;
        let mut done = Vec::new();
        let mut ran = false;
        for step in &self.steps {
            if let Err(error) = apply_step(step, live, &mut done, &mut ran) {
                if !done.is_empty() {
                    eprintln!("undoing what was done");
                }
                while let Some(undo) = done.pop() {
                    undo.run();
                }
                if ran {
                    for argv in &self.after_undo {
                        let _ = run(argv);
                    }
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Every directory the plan writes in must be writable before anything is written.
    fn check_rights(&self) -> Result<(), Failure> {
        for step in &self.steps {
            let target = match step {
                Step::Write { path, .. } | Step::Remove { path, .. } => path.parent(),
                Step::MakeDir { path, .. } => Some(path.as_path()),
                _ => None,
            };
            let Some(mut dir) = target else { continue };
            if matches!(step, Step::Remove { path, .. } if !path.exists()) {
                continue;
            }
            while !dir.exists() {
                match dir.parent() {
                    Some(parent) => dir = parent,
                    None => break,
                }
            }
            if let Err(e) = probe_writable(dir) {
                return Err(Failure::Config(format!("cannot write in {}: {e}; {}", dir.display(), self.rights_hint)));
            }
        }
        Ok(())
    }
}

/// Creates and removes a file in `dir`: the one check that answers for permissions, read-only
/// mounts and ACLs alike.
fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".cropscode-probe-{}", std::process::id()));
    fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    fs::remove_file(&probe)
}

enum Undo {
    /// Put back what `path` held (or remove it).
    Restore { path: PathBuf, previous: Option<Vec<u8>> },
    /// Remove directories that were created, deepest first.
    RemoveDirs(Vec<PathBuf>),
    /// Undo a service-manager call.
    Scm(ScmStep),
    /// Run a command.
    Run(Vec<String>),
}

impl Undo {
    fn run(self) {
        match self {
            Undo::Restore { path, previous: Some(bytes) } => {
                let _ = fs::write(&path, bytes);
            }
            Undo::Restore { path, previous: None } => {
                let _ = fs::remove_file(&path);
            }
            Undo::RemoveDirs(dirs) => {
                for dir in dirs {
                    let _ = fs::remove_dir(&dir);
                }
            }
            Undo::Scm(step) => {
                let _ = super::windows::call(&step);
            }
            Undo::Run(argv) => {
                eprintln!("running: {}", argv.join(" "));
                let _ = run(&argv);
            }
        }
    }
}

fn apply_step(step: &Step, live: bool, done: &mut Vec<Undo>, ran: &mut bool) -> Result<(), Failure> {
    let io_failure =
        |what: &str, path: &Path, e: io::Error| Failure::Runtime(format!("cannot {what} {}: {e}", path.display()));
    match step {
        Step::Write { path, mode, contents } => {
            let parent = path.parent().unwrap_or(Path::new("."));
            let created = create_dirs(parent, 0o755).map_err(|e| io_failure("create", parent, e))?;
            done.push(Undo::RemoveDirs(created));
            let previous = fs::read(path).ok();
            write_via_rename(path, contents.as_bytes(), *mode).map_err(|e| io_failure("write", path, e))?;
            done.push(Undo::Restore { path: path.clone(), previous });
            println!("wrote {} (mode {mode:04o})", path.display());
        }
        Step::MakeDir { path, mode } => {
            let created = create_dirs(path, *mode).map_err(|e| io_failure("create", path, e))?;
            if !created.is_empty() {
                println!("created {} (kept by uninstall)", path.display());
            }
            done.push(Undo::RemoveDirs(created));
        }
        Step::Remove { path, keep } => {
            match fs::remove_file(path) {
                Ok(()) => println!("removed {}", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => println!("{} was not there", path.display()),
                Err(e) => return Err(io_failure("remove", path, e)),
            }
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == keep || !d.starts_with(keep) || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Step::Run { argv, tolerate_failure, undo } => {
            let shown = argv.join(" ");
            if !live {
                println!("not run (--root): {shown}");
                return Ok(());
            }
            println!("running: {shown}");
            *ran = true;
            if let Some(undo) = undo {
                done.push(Undo::Run(undo.clone()));
            }
            match run(argv) {
                Ok(()) => {}
                Err(_) if *tolerate_failure => {}
                Err(message) => return Err(Failure::Runtime(format!("`{shown}` {message}"))),
            }
        }
        Step::Scm(call) => {
            if !live {
                println!("not called (--root): {call}");
                return Ok(());
            }
            println!("{call}");
            super::windows::call(call)?;
            if let Some(undo) = call.undo() {
                done.push(Undo::Scm(undo));
            }
        }
        Step::Note(note) => println!("{note}"),
    }
    Ok(())
}

fn run(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("is empty")?;
    let status = Command::new(program).args(args).status().map_err(|e| format!("could not start: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("failed ({status})")) }
}

/// Creates `dir` and its missing parents with `mode`; returns the ones it created, deepest first.
fn create_dirs(dir: &Path, mode: u32) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    let mut created = Vec::new();
    for p in missing.iter().rev() {
        let builder = &mut fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(builder, mode);
        let _ = mode;
        if let Err(e) = builder.create(p) {
            for c in created.iter().rev() {
                let _ = fs::remove_dir(c);
            }
            return Err(e);
        }
        created.push(p.clone());
    }
    created.reverse();
    Ok(created)
}

/// Writes a temporary file beside `path` with `mode` from its first byte, then renames it over
/// `path`: a service manager never reads a torn file.
fn write_via_rename(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("not a file path"))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        // The umask may have narrowed the mode: set it exactly.
        #[cfg(unix)]
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl fmt::Display for ServicePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# cropscode service {} (dry run: nothing is changed)", self.title)?;
        for step in &self.steps {
            match step {
                Step::Write { path, mode, contents } => {
                    writeln!(f, "write {} (mode {mode:04o}):", path.display())?;
                    for line in contents.lines() {
                        writeln!(f, "    {line}")?;
                    }
                }
                Step::MakeDir { path, mode } => {
                    writeln!(f, "create directory {} (mode {mode:04o}) if missing", path.display())?
                }
                Step::Remove { path, .. } => writeln!(f, "remove {}", path.display())?,
                Step::Run { argv, .. } => writeln!(f, "run: {}", argv.join(" "))?,
                Step::Scm(call) => writeln!(f, "{call}")?,
                Step::Note(note) => writeln!(f, "{note}")?,
            }
        }
        Ok(())
    }
}
