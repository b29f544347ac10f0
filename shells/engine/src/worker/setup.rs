//! `container.setup`: clone a git repository into the container, then write files into it.
//!
//! Everything that carries content goes in through the engine's archive upload (a tar
//! built in memory), never through a shell or a command line; git runs as an argument
//! vector, as the container's own user, so the clone belongs to that user.
//!
//! **The credential** is handed to git through a file, never through argv or the
//! environment (both show up in `docker inspect` of the exec, `/proc/<pid>/cmdline` and
//! `/proc/<pid>/environ`). The worker uploads `<dir>/credentials` (mode 0600, in a fresh
//! directory of mode 0700, both owned by the container's user, `<dir>` a random
//! `/tmp/.cropscode-…`) in the format of git's built-in `store` helper, and runs
//! `git -c credential.helper= -c "credential.helper=store --file=<dir>/credentials" clone …`:
//! argv names the file, not the secret. The directory is removed right after the clone,
//! whether it succeeded or not. The secret also never reaches a log line, and any text
//! from git that ends up in an answer is scrubbed of it. A credential only makes sense for
//! `http(s)://` URLs; with another scheme it is refused (`invalid_request`).
//!
//! Directories that do not exist yet (`targetDir`, the parents of `files`) are created by
//! the upload, owned by the container's user; existing directories are never touched,
//! because each upload goes to the deepest directory that already exists.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use cropscode_core::Secret;
use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{ContainerSetup, ContainerSetupResult, InlineFile, RepoSource};

use cropscode_engine_api::{EngineClient, ExecOutput, ExecSpec, Owner, TarBuilder};

use super::WorkerEngine;
use super::exec::{Ran, run};
use super::ownership::gone;
use crate::outcome::{Failure, Outcome};
use crate::owned::{Owned, OwnedContainers};

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the small helper commands (`id`, `rev-parse`, `rm`) may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of git's stderr kept for an error message.
const MAX_MESSAGE_BYTES: usize = 2048;
const DEFAULT_USERNAME: &str = "x-access-token";

impl WorkerEngine {
    pub(crate) async fn setup(&self, request: ContainerSetup) -> Outcome<ContainerSetupResult> {
        let client = self.shared.client().await?;
        let owned = self.resolve(&client, &request.container_id, request.tenant.as_deref()).await?;
        // git and the helpers run as the container's user.
        self.check_user(None, &owned.inspect.config.user)?;
        if let Some(repo) = &request.repo
            && repo.credential.is_some()
            && !(repo.url.starts_with("https://") || repo.url.starts_with("http://"))
        {
            return Err(Failure::wire(
                ErrorCode::InvalidRequest,
                "`repo.credential` can only be used with an http:// or https:// `repo.url`",
            ));
        }
        if request.repo.is_some() && !owned.inspect.state.running {
            return Err(not_running(&request.container_id));
        }
        let owner = owner(&client, &owned).await?;
        let mut dirs = KnownDirs::default();
        let mut commit = None;
        if let Some(repo) = &request.repo {
            dirs.ensure(&client, &owned.id, &request.target_dir, owner).await?;
            commit = Some(clone(&client, &owned, repo, &request.target_dir, owner, &mut dirs).await?);
            tracing::info!(container = %owned.id, target = %request.target_dir, "cloned repository");
        }
        let files_written = write_files(&client, &owned.id, &request.files, owner, &mut dirs).await?;
        Ok(ContainerSetupResult { container_id: owned.id, target_dir: request.target_dir, commit, files_written })
    }
}

fn not_running(container_id: &str) -> Failure {
    Failure::wire(ErrorCode::Conflict, format!("container `{container_id}` is not running"))
}

/// The uid and gid of the container's configured user.
async fn owner(client: &EngineClient, container: &Owned) -> Outcome<Owner> {
    let user = container.inspect.config.user.trim();
    let numeric = |s: &str| s.parse::<u32>().ok();
    if matches!(user, "" | "root" | "0" | "0:0") {
        return Ok(Owner::ROOT);
    }
    if let Some((uid, gid)) = user.split_once(':')
        && let (Some(uid), Some(gid)) = (numeric(uid), numeric(gid))
    {
        return Ok(Owner { uid, gid });
    }
    // A user name, or a uid whose group comes from the image's /etc/group: ask the container.
    if !container.inspect.state.running {
        return Err(not_running(&container.id));
    }
    let output = helper(client, container, vec!["id".into()]).await?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .and_then(|rest| rest.split('(').next())
            .and_then(|n| n.parse::<u32>().ok())
    };
    match (output.exit_code, field("uid="), field("gid=")) {
        (0, Some(uid), Some(gid)) => Ok(Owner { uid, gid }),
        _ => Err(Failure::wire(
            ErrorCode::Conflict,
            format!("cannot tell the uid of the container's user `{user}` (`id` failed in the container)"),
        )),
    }
}

/// Runs a short helper command as the container's user.
async fn helper(client: &EngineClient, container: &Owned, cmd: Vec<String>) -> Outcome<ExecOutput> {
    let spec = ExecSpec { cmd, env: vec!["GIT_TERMINAL_PROMPT=0".into()], ..ExecSpec::default() };
    match run(client, container, &spec, None, 64 * 1024, HELPER_TIMEOUT).await.map_err(gone(&container.id))? {
        Ran::Exited(output) => Ok(output),
        Ran::TimedOut { .. } => Err(Failure::wire(
            ErrorCode::Timeout,
            format!("`{}` did not finish within {} s", spec.cmd.join(" "), HELPER_TIMEOUT.as_secs()),
        )),
    }
}

/// Directories known to exist in the container, so each is checked once.
#[derive(Default)]
struct KnownDirs(HashSet<String>);

impl KnownDirs {
    /// Creates `dir` and its missing parents, owned by `owner`, without touching the
    /// directories that exist: the tar goes to the deepest existing one.
    async fn ensure(&mut self, client: &EngineClient, id: &str, dir: &str, owner: Owner) -> Outcome<()> {
        self.ensure_with_mode(client, id, dir, 0o755, owner).await
    }

    async fn ensure_with_mode(
        &mut self,
        client: &EngineClient,
        id: &str,
        dir: &str,
        mode: u32,
        owner: Owner,
    ) -> Outcome<()> {
        let dir = dir.trim_end_matches('/');
        let mut existing = dir;
        while !existing.is_empty() && !self.0.contains(existing) {
            if client.path_exists(id, existing).await.map_err(gone(id))? {
                break;
            }
            existing = existing.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
        if existing != dir {
            let missing = dir[existing.len()..].trim_start_matches('/');
            let mut tar = TarBuilder::new();
            tar.dir(missing, mode, owner)?;
            let base = if existing.is_empty() { "/" } else { existing };
            client.write_files(id, base, tar).await.map_err(gone(id))?;
        }
        let mut known = dir;
        while !known.is_empty() && self.0.insert(known.to_owned()) {
            known = known.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
        Ok(())
    }
}

/// Writes `files` (absolute paths), one upload per directory. Returns how many.
async fn write_files(
    client: &EngineClient,
    id: &str,
    files: &[InlineFile],
    owner: Owner,
    dirs: &mut KnownDirs,
) -> Outcome<u32> {
    let mut by_dir: BTreeMap<&str, Vec<(&str, &InlineFile)>> = BTreeMap::new();
    for file in files {
        let (dir, name) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
        by_dir.entry(dir).or_default().push((name, file));
    }
    for (dir, entries) in by_dir {
        dirs.ensure(client, id, dir, owner).await?;
        let mut tar = TarBuilder::new();
        for (name, file) in entries {
            let bytes = file
                .bytes()
                .map_err(|why| Failure::wire(ErrorCode::InvalidRequest, format!("`{}`: {why}", file.path)))?;
            tar.file_owned(name, &bytes, file.mode(), owner)?;
        }
        client.write_files(id, if dir.is_empty() { "/" } else { dir }, tar).await.map_err(gone(id))?;
    }
    Ok(u32::try_from(files.len()).unwrap_or(u32::MAX))
}

/// Clones `repo` into `target` and returns the commit checked out.
async fn clone(
    client: &EngineClient,
    container: &Owned,
    repo: &RepoSource,
    target: &str,
    owner: Owner,
    dirs: &mut KnownDirs,
) -> Outcome<String> {
    let mut git = vec!["git".to_owned()];
    let mut scratch = None;
    if let Some(secret) = &repo.credential {
        let dir = format!("/tmp/.cropscode-{:016x}", RandomState::new().hash_one(std::time::SystemTime::now()));
        dirs.ensure_with_mode(client, &container.id, "/tmp", 0o1777, Owner::ROOT).await?;
        let mut tar = TarBuilder::new();
        let name = dir.trim_start_matches("/tmp/");
        tar.dir(name, 0o700, owner)?;
        tar.file_owned(&format!("{name}/credentials"), store_line(repo, secret).expose().as_bytes(), 0o600, owner)?;
        client.write_files(&container.id, "/tmp", tar).await.map_err(gone(&container.id))?;
        git.extend(["-c".into(), "credential.helper=".into()]);
        git.extend(["-c".into(), format!("credential.helper=store --file={dir}/credentials")]);
        scratch = Some(dir);
    }
    let full_sha = repo.git_ref.as_deref().filter(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()));
    git.push("clone".into());
    if let Some(depth) = repo.depth {
        git.extend(["--depth".into(), depth.to_string()]);
    }
    if let (Some(git_ref), None) = (&repo.git_ref, full_sha) {
        git.extend(["--branch".into(), git_ref.clone()]);
    }
    git.extend(["--".into(), repo.url.clone(), target.to_owned()]);

    let spec = ExecSpec { cmd: git, env: vec!["GIT_TERMINAL_PROMPT=0".into()], ..ExecSpec::default() };
    let cloned = run(client, container, &spec, None, 64 * 1024, CLONE_TIMEOUT).await.map_err(gone(&container.id));
    if let Some(dir) = scratch {
        // Removed whatever happened; a failure here is logged (without the secret) and
        // does not hide the clone's own outcome.
        match helper(client, container, vec!["rm".into(), "-rf".into(), "--".into(), dir.clone()]).await {
            Ok(output) if output.exit_code == 0 => {}
            _ => tracing::warn!(container = %container.id, %dir, "could not remove the git credential file"),
        }
    }
    let scrub = |text: &[u8]| scrub(text, repo.credential.as_ref());
    match cloned? {
        Ran::Exited(output) if output.exit_code == 0 => {}
        // The engine could not start `git` at all.
        Ran::Exited(output) if matches!(output.exit_code, 126 | 127) => {
            let said = if output.stderr.is_empty() { &output.stdout } else { &output.stderr };
            let message = format!("git cannot run in the container: {}", scrub(said));
            return Err(Failure::wire(ErrorCode::Conflict, message));
        }
        Ran::Exited(output) => return Err(git_failure(&scrub(&output.stderr))),
        Ran::TimedOut { .. } => {
            let message = format!("the clone did not finish within {} s", CLONE_TIMEOUT.as_secs());
            return Err(Failure::wire(ErrorCode::Timeout, message));
        }
    }
    if let Some(sha) = full_sha {
        let checkout = ["git", "-C", target, "checkout", "--quiet", "--detach", sha].map(String::from).to_vec();
        let output = helper(client, container, checkout).await?;
        if output.exit_code != 0 {
            return Err(git_failure(&scrub(&output.stderr)));
        }
    }
    let output =
        helper(client, container, ["git", "-C", target, "rev-parse", "HEAD"].map(String::from).to_vec()).await?;
    if output.exit_code != 0 {
        return Err(git_failure(&scrub(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The line git's `store` helper reads: `scheme://user:secret@host[:port]`, percent-encoded.
fn store_line(repo: &RepoSource, secret: &Secret) -> Secret {
    let (scheme, rest) = repo.url.split_once("://").unwrap_or(("https", &repo.url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (url_user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    let user = repo.username.as_deref().or(url_user).unwrap_or(DEFAULT_USERNAME);
    Secret::new(format!("{scheme}://{}:{}@{host}\n", percent(user), percent(secret.expose())))
}

fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Git's output made safe for an answer: the secret (plain or percent-encoded) replaced by
/// `***`, and at most the last [`MAX_MESSAGE_BYTES`].
fn scrub(text: &[u8], secret: Option<&Secret>) -> String {
    let mut text = String::from_utf8_lossy(text).trim().to_owned();
    if let Some(secret) = secret.map(Secret::expose).filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***").replace(&percent(secret), "***");
    }
    if text.len() > MAX_MESSAGE_BYTES {
        let mut start = text.len() - MAX_MESSAGE_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = format!("…{}", &text[start..]);
    }
    text
}

/// A failed git command, by what git said.
fn git_failure(stderr: &str) -> Failure {
    let said = |needles: &[&str]| needles.iter().any(|n| stderr.contains(n));
    let code = if said(&["already exists and is not an empty directory"]) {
        ErrorCode::Conflict
    } else if said(&["Authentication failed", "could not read Username", "could not read Password", "403"]) {
        ErrorCode::Forbidden
    } else if said(&[
        "not found",
        "does not exist",
        "did not match any",
        "does not appear to be a git repository",
        "unable to read tree",
        "reference is not a tree",
    ]) {
        ErrorCode::NotFound
    } else {
        ErrorCode::Conflict
    };
    Failure::wire(code, format!("git failed: {stderr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(url: &str, username: Option<&str>) -> RepoSource {
        RepoSource {
            url: url.into(),
            git_ref: None,
            username: username.map(Into::into),
            credential: Some(Secret::new("t0k:en/+@")),
            depth: None,
        }
    }

    #[test]
    fn store_lines_match_git_credential_store() {
        let secret = Secret::new("t0k:en/+@");
        let line = store_line(&repo("https://git.example.com/acme/web.git", None), &secret);
        assert_eq!(line.expose(), "https://x-access-token:t0k%3Aen%2F%2B%40@git.example.com\n");
        let line = store_line(&repo("http://bob@127.0.0.1:8080/r.git", None), &secret);
        assert_eq!(line.expose(), "http://bob:t0k%3Aen%2F%2B%40@127.0.0.1:8080\n");
        let line = store_line(&repo("https://bob@h/r", Some("alice")), &secret);
        assert!(line.expose().starts_with("https://alice:"));
        assert_eq!(format!("{line:?}"), "***");
    }

    #[test]
    fn messages_are_scrubbed_and_bounded() {
        let secret = Secret::new("s3cr/et");
        let text = b"fatal: unable to access 'https://x:s3cr%2Fet@h/': s3cr/et rejected";
        let scrubbed = scrub(text, Some(&secret));
        assert!(!scrubbed.contains("s3cr"), "{scrubbed}");
        assert_eq!(scrub(&vec![b'a'; 5000], None).len(), MAX_MESSAGE_BYTES + "…".len());
    }

    #[test]
    fn git_failures_are_classified() {
        let code = |s| git_failure(s).into_wire().code;
        assert_eq!(
            code("fatal: destination path '/w' already exists and is not an empty directory."),
            ErrorCode::Conflict
        );
        assert_eq!(
            code("fatal: could not read Username for 'http://h': terminal prompts disabled"),
            ErrorCode::Forbidden
        );
        assert_eq!(code("fatal: Remote branch nope not found in upstream origin"), ErrorCode::NotFound);
        assert_eq!(code("fatal: '/srv/nope.git' does not appear to be a git repository"), ErrorCode::NotFound);
        assert_eq!(code("fatal: unable to access 'https://h/': Could not resolve host: h"), ErrorCode::Conflict);
    }
}
