//! The agent's files: reading the configuration files into raw key/value
//! entries, and writing `credentials.json` safely (atomically, with the
//! runtime's [`write_atomically`]; `worker.json` is the runtime's own:
//! [`cropscode_runtime::state`]).
//!
//! - fleet: `agent.yaml` (keys are the environment names in lower case);
//! - BYOM: `~/.cropscode/credentials.json` (`{"token", "orchestratorUrl"}`, mode
//!   0600, written by `cropscode login`), `config.json` (preferences keyed by
//!   environment name) and `worker.json` (registration state).
//!
//! Unknown keys are errors naming the key and the file: a typo in a fleet
//! configuration must not pass silently. Values are kept as text here and parsed
//! by the layering in `resolve`, so errors read the same for every layer.
//! Nothing here puts a file's content into an error message, so a token in a
//! malformed file cannot leak through one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cropscode_core::Secret;
use cropscode_runtime::state::write_atomically;

use super::{ConfigError, Key};

/// One value read from a configuration file.
#[derive(Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The key it sets.
    pub key: Key,
    /// The key as written in the file.
    pub written: String,
    /// The value as text (numbers and booleans converted).
    pub value: String,
    /// The file.
    pub path: PathBuf,
}

impl std::fmt::Debug for FileEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value: &dyn std::fmt::Debug = if self.key == Key::WorkerToken { &"***" } else { &self.value };
        f.debug_struct("FileEntry")
            .field("key", &self.key)
            .field("written", &self.written)
            .field("value", value)
            .field("path", &self.path)
            .finish()
    }
}

/// Reads `agent.yaml`. `AGENT_CONFIG` cannot be set inside it; every other key can.
pub fn read_agent_yaml(path: &Path) -> Result<Vec<FileEntry>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    let doc: yaml_serde::Value =
        yaml_serde::from_str(&text).map_err(|e| ConfigError::file(path, format!("not valid YAML: {e}")))?;
    let mapping = match doc {
        yaml_serde::Value::Null => return Ok(Vec::new()),
        yaml_serde::Value::Mapping(m) => m,
        _ => return Err(ConfigError::file(path, "expected a mapping of keys like `orchestrator_ws_url: wss://…`")),
    };
    let mut entries = Vec::new();
    for (k, v) in mapping {
        let Some(written) = k.as_str().map(str::to_owned) else {
            return Err(ConfigError::file(path, "every key must be a string"));
        };
        let key = Key::ALL
            .into_iter()
            .find(|key| key.yaml() == written && *key != Key::AgentConfig)
            .ok_or_else(|| unknown_key(&written, path, Key::yaml))?;
        let value = match v {
            yaml_serde::Value::Null => continue,
            yaml_serde::Value::String(s) => s,
            yaml_serde::Value::Bool(b) => b.to_string(),
            yaml_serde::Value::Number(n) => n.to_string(),
            _ => {
                return Err(ConfigError::value(&written, &super::Source::File(path.into()), "expected a single value"));
            }
        };
        entries.push(FileEntry { key, written, value, path: path.into() });
    }
    Ok(entries)
}

/// Reads `config.json` (BYOM preferences) if it exists.
pub fn read_preferences(path: &Path) -> Result<Vec<FileEntry>, ConfigError> {
    let Some(object) = read_json_object(path)? else { return Ok(Vec::new()) };
    let mut entries = Vec::new();
    for (written, v) in object {
        let key = Key::from_env_name(&written).ok_or_else(|| unknown_key(&written, path, |k| k.env().into()))?;
        let refuse = |message: &str| Err(ConfigError::value(&written, &super::Source::File(path.into()), message));
        match key {
            Key::WorkerToken => {
                return refuse(
                    "the token belongs in credentials.json (mode 0600): run `cropscode login` and remove it here",
                );
            }
            Key::AgentMode | Key::AgentConfig => {
                return refuse("cannot be set in config.json; use the flag or the environment variable");
            }
            _ => {}
        }
        let value = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return refuse("expected a string, number or boolean"),
        };
        entries.push(FileEntry { key, written, value, path: path.into() });
    }
    Ok(entries)
}

fn unknown_key(written: &str, path: &Path, name: fn(Key) -> String) -> ConfigError {
    let known: Vec<String> = Key::ALL.into_iter().filter(|k| *k != Key::AgentConfig).map(name).collect();
    ConfigError::file(path, format!("unknown key '{written}' (known keys: {})", known.join(", ")))
}

fn read_json_object(path: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ConfigError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::file(path, format!("cannot read: {e}"))),
    };
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        // The position only: serde_json's messages can quote a value, and this may be the token's file.
        Err(e) => Err(ConfigError::file(path, format!("not valid JSON (line {}, column {})", e.line(), e.column()))),
        Ok(_) => Err(ConfigError::file(path, "expected a JSON object")),
    }
}

/// `credentials.json`, written by `cropscode login`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The worker token.
    pub token: Option<Secret>,
    /// The orchestrator it belongs to.
    pub orchestrator_url: Option<String>,
}

/// The JSON keys of `credentials.json`.
pub const TOKEN_KEY: &str = "token";
/// The JSON key of the orchestrator URL in `credentials.json`.
pub const URL_KEY: &str = "orchestratorUrl";

/// Reads `credentials.json` if it exists, refusing one that others could read
/// or that belongs to another user (the token would not be the owner's secret).
pub fn read_credentials(path: &Path) -> Result<Option<Credentials>, ConfigError> {
    if !path.exists() {
        return Ok(None);
    }
    check_private(path)?;
    let Some(object) = read_json_object(path)? else { return Ok(None) };
    let text = |key: &str| match object.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ConfigError::value(key, &super::Source::File(path.into()), "expected a string")),
    };
    Ok(Some(Credentials { token: text(TOKEN_KEY)?.map(Secret::new), orchestrator_url: text(URL_KEY)? }))
}

/// Writes `credentials.json` with mode 0600 from the moment it exists, creating
/// its directory with mode 0700.
pub fn write_credentials(path: &Path, credentials: &Credentials) -> io::Result<()> {
    let mut object = serde_json::Map::new();
    if let Some(token) = &credentials.token {
        object.insert(TOKEN_KEY.into(), token.expose().into());
    }
    if let Some(url) = &credentials.orchestrator_url {
        object.insert(URL_KEY.into(), url.clone().into());
    }
    let mut bytes = serde_json::to_vec_pretty(&object).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes, 0o600)
}

/// Refuses a credentials file that others can read or that another user owns.
#[cfg(unix)]
pub fn check_private(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(ConfigError::file(
            path,
            format!(
                "belongs to uid {}, not to the user running the worker (uid {me}); run `cropscode login` as this user",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::file(
            path,
            format!("has mode {mode:04o}: only its owner may read it; run `chmod 600 {}`", path.display()),
        ));
    }
    Ok(())
}

/// Refuses a credentials file that others can read (not checked on this platform).
#[cfg(not(unix))]
pub fn check_private(_path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cropscode-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn yaml_values_become_text_and_unknown_keys_are_named() {
        let dir = temp_dir("yaml");
        let path = dir.join("agent.yaml");
        fs::write(&path, "worker_name: rack-3\nbackoff_jitter: 0.5\nlog_level: ~\n").unwrap();
        let entries = read_agent_yaml(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[1].key, entries[1].value.as_str()), (Key::BackoffJitter, "0.5"));

        fs::write(&path, "worker_nmae: rack-3\n").unwrap();
        let err = read_agent_yaml(&path).unwrap_err().to_string();
        assert!(err.contains("worker_nmae") && err.contains(&path.display().to_string()), "{err}");
        fs::write(&path, "agent_config: /x\n").unwrap();
        assert!(read_agent_yaml(&path).is_err());
    }

    #[test]
    fn credentials_round_trip_private() {
        let dir = temp_dir("creds");
        let path = dir.join("sub").join("credentials.json");
        let creds = Credentials { token: Some(Secret::new("tok")), orchestrator_url: Some("wss://o.example".into()) };
        write_credentials(&path, &creds).unwrap();
        assert_eq!(read_credentials(&path).unwrap(), Some(creds));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read_credentials(&path).unwrap_err().to_string().contains("chmod 600"));
        }
    }

    #[test]
    fn malformed_credentials_do_not_quote_their_content() {
        let dir = temp_dir("badcreds");
        let path = dir.join("credentials.json");
        write_atomically(&path, br#"{"token": "s3cret-value" "#, 0o600).unwrap();
        let err = read_credentials(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
