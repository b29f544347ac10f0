//! `container.setup`, `container.start`, `container.stop`, `container.remove`,
//! `container.list`, `container.list-all` (and the checks every
//! container-targeting command shares). `container.create` is in [`super::create`].

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::bounds::*;
use super::content::InlineFile;
use super::create::PortMapping;
use super::validate::{self as check, Check, Index, Key, fail};
use super::{CommandParams, deserialize_secret};
use crate::Secret;

/// The git repository `container.setup` clones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoSource {
    /// `https://`, `http://`, `ssh://`, `git://`, `file://` or `user@host:path` URL, without a password.
    pub url: String,
    /// Branch, tag or commit to check out; absent: the remote's default branch.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// User name for `credential` over http(s); absent: `x-access-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password or token for the clone. Never serialized, logged or returned.
    #[serde(default, deserialize_with = "deserialize_secret", skip_serializing)]
    pub credential: Option<Secret>,
    /// Shallow clone depth; absent: full history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
}

/// `container.setup`: clone a repository into a container and write files into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSetup {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Repository to clone into `targetDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<RepoSource>,
    /// Absolute directory in the container to clone into. Default `/workspace`.
    #[serde(default = "default_target_dir")]
    pub target_dir: String,
    /// Files to write (after the clone), each with an absolute path in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<InlineFile>,
}

fn default_target_dir() -> String {
    String::from(DEFAULT_TARGET_DIR)
}

impl CommandParams for ContainerSetup {
    const NAME: &'static str = "container.setup";
    type Output = ContainerSetupResult;

    fn validate(&self) -> Check {
        validate_target(&self.container_id, self.tenant.as_deref())?;
        if let Some(repo) = &self.repo {
            check::git_url(&"repo.url", &repo.url)?;
            if let Some(git_ref) = &repo.git_ref {
                check::git_ref(&"repo.ref", git_ref)?;
            }
            if let Some(username) = &repo.username {
                check::token(&"repo.username", username, MAX_OPTION_BYTES)?;
            }
            if let Some(credential) = &repo.credential {
                // Checked without echoing the value: the message names the field only.
                if credential.is_empty()
                    || credential.expose().len() > MAX_CREDENTIAL_BYTES
                    || credential.expose().chars().any(char::is_control)
                {
                    return Err(fail(
                        &"repo.credential",
                        format_args!("must be 1..={MAX_CREDENTIAL_BYTES} bytes without control characters"),
                    ));
                }
            }
            if let Some(depth) = repo.depth {
                check::range(&"repo.depth", depth, 1, MAX_CLONE_DEPTH)?;
            }
        }
        check::container_path(&"targetDir", &self.target_dir)?;
        check::count(&"files", self.files.len(), MAX_FILES)?;
        for (i, file) in self.files.iter().enumerate() {
            check::container_path(&Key(&Index(&"files", i), "path"), &file.path)?;
            validate_file(&Index(&"files", i), file)?;
        }
        if self.repo.is_none() && self.files.is_empty() {
            return Err(String::from("`repo` or `files`: at least one must be given"));
        }
        Ok(())
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Checks an inline file's content and mode (its path is checked by the caller).
pub(crate) fn validate_file(field: &Index<'_>, file: &InlineFile) -> Check {
    if let Err(why) = file.bytes() {
        return Err(fail(&Key(field, "content"), why));
    }
    if let Some(mode) = file.mode {
        check::range(&Key(field, "mode"), mode, 0, MAX_FILE_MODE)?;
    }
    Ok(())
}

/// Answer to `container.setup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSetupResult {
    /// The container's full id.
    pub container_id: String,
    /// Where the repository was cloned.
    pub target_dir: String,
    /// The commit checked out, when a repository was cloned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// How many `files` were written.
    pub files_written: u32,
}

/// Checks the `containerId` and optional `tenant` every container-targeting command carries.
pub(crate) fn validate_target(container_id: &str, tenant: Option<&str>) -> Check {
    check::container_name(&"containerId", container_id)?;
    if let Some(tenant) = tenant {
        check::identifier(&"tenant", tenant)?;
    }
    Ok(())
}

/// `container.start`: start a created or stopped container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStart {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// `container.stop`: stop a running container (SIGTERM, then SIGKILL after `graceMs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStop {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Milliseconds between the stop signal and a forced kill, 1..=600000. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

/// `container.remove`: remove a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRemove {
    /// Target container id or name.
    pub container_id: String,
    /// Tenant the container must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Remove even when running (killing it). Default `false`.
    #[serde(default)]
    pub force: bool,
    /// Also remove the container's anonymous volumes. Default `false`.
    #[serde(default)]
    pub remove_volumes: bool,
}

impl CommandParams for ContainerStart {
    const NAME: &'static str = "container.start";
    type Output = ContainerStartResult;

    fn validate(&self) -> Check {
        validate_target(&self.container_id, self.tenant.as_deref())
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

impl CommandParams for ContainerStop {
    const NAME: &'static str = "container.stop";
    type Output = ContainerStopResult;

    fn validate(&self) -> Check {
        validate_target(&self.container_id, self.tenant.as_deref())?;
        if let Some(grace) = self.grace_ms {
            check::millis(&"graceMs", grace, MAX_GRACE_MS)?;
        }
        Ok(())
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

impl ContainerStop {
    /// The grace period to use.
    pub fn grace_ms(&self) -> u64 {
        self.grace_ms.unwrap_or(DEFAULT_STOP_GRACE_MS)
    }
}

impl CommandParams for ContainerRemove {
    const NAME: &'static str = "container.remove";
    type Output = ContainerRemoveResult;

    fn validate(&self) -> Check {
        validate_target(&self.container_id, self.tenant.as_deref())
    }

    fn target_container(&self) -> Option<&str> {
        Some(&self.container_id)
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Answer to `container.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStartResult {
    /// The container's full id.
    pub container_id: String,
    /// It was already running; nothing was done.
    pub already_running: bool,
}

/// Answer to `container.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStopResult {
    /// The container's full id.
    pub container_id: String,
    /// It was not running; nothing was done.
    pub already_stopped: bool,
    /// Exit code of the container's main process, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// Answer to `container.remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRemoveResult {
    /// The removed container's full id.
    pub container_id: String,
}

/// `container.list`: the managed containers of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerList {
    /// The tenant whose containers to list.
    pub tenant: String,
    /// Only running containers. Default `false` (all states).
    #[serde(default)]
    pub running_only: bool,
}

impl CommandParams for ContainerList {
    const NAME: &'static str = "container.list";
    type Output = ContainerListResult;

    fn validate(&self) -> Check {
        check::identifier(&"tenant", &self.tenant)
    }

    fn tenant(&self) -> Option<&str> {
        Some(&self.tenant)
    }
}

/// `container.list-all`: every container this worker manages, across tenants
/// (never the machine's other containers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerListAll {
    /// Only running containers. Default `false` (all states).
    #[serde(default)]
    pub running_only: bool,
}

impl CommandParams for ContainerListAll {
    const NAME: &'static str = "container.list-all";
    type Output = ContainerListResult;

    fn validate(&self) -> Check {
        Ok(())
    }
}

/// A container's state, as the engines report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Dead (failed removal or similar).
    Dead,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

/// One container in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSummary {
    /// Full container id.
    pub container_id: String,
    /// Container name (without a leading `/`).
    pub name: String,
    /// Image reference it was created from.
    pub image: String,
    /// The tenant it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// State.
    pub state: ContainerState,
    /// Engine's human-readable status, e.g. `Up 5 minutes`.
    pub status: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// All labels, the worker's `cropscode.*` included.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

/// Answer to `container.list` and `container.list-all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerListResult {
    /// The containers, newest first.
    pub containers: Vec<ContainerSummary>,
}
