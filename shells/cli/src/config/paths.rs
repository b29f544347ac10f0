//! The agent's standard places on each operating system: the data directory (`DATA_DIR`)
//! and the fleet configuration file (`agent.yaml`).
//!
//! | | Linux | macOS | Windows |
//! |---|---|---|---|
//! | `DATA_DIR`, BYOM | `$XDG_DATA_HOME/cropscode`, `~/.local/share/cropscode` | `~/Library/Application Support/cropscode` | `%LOCALAPPDATA%\cropscode` |
//! | `DATA_DIR`, fleet | `/var/lib/cropscode` | `/Library/Application Support/cropscode` | `%ProgramData%\cropscode` |
//! | `agent.yaml` | `/etc/cropscode/agent.yaml` | `/etc/cropscode/agent.yaml` | `%ProgramData%\cropscode\agent.yaml` |
//!
//! A fleet worker is a system service (root's launchd daemon, a Windows service account),
//! so its data goes to the system-wide place, next to its configuration, not into the
//! service account's profile. The BYOM files stay `~/.cropscode/…` on every system: that
//! path is the contract between `cropscode login`, the worker and the documentation.
//!
//! Each function takes the [`Os`] and the environment as values, so every system's rules
//! are compiled on every system (cross/platforms.sh type-checks them for Windows and
//! macOS) and tested on Linux. Paths for another system are joined with this system's
//! separator; only the choice of place is meant to be compared there.

use std::ffi::OsStr;
use std::path::PathBuf;

use cropscode_core::protocol::Mode;
use cropscode_engine_api::discovery::Os;

use super::Env;

/// The directory every per-OS default below ends in.
const APP: &str = "cropscode";

/// `~` on `os`: `HOME`, else the platform's home directory. On Windows `HOME` counts only
/// when it is a Windows path (MSYS shells and Wine may pass a unix one such as `/home/u`),
/// then `USERPROFILE`, as Windows programs (Docker's and Podman's included) use it.
pub fn home(os: Os, env: &Env) -> Option<PathBuf> {
    let home = env.get("HOME");
    let home = match os {
        Os::Windows => home
            .filter(|h| is_windows_absolute(h))
            .or_else(|| env.get("USERPROFILE").filter(|h| is_windows_absolute(h))),
        _ => home,
    };
    home.map(PathBuf::from).or_else(dirs::home_dir)
}

/// `C:\…`, `C:/…` or `\\server\…`: an absolute path on Windows, whatever this system is.
fn is_windows_absolute(path: &OsStr) -> bool {
    let bytes = path.as_encoded_bytes();
    match bytes {
        [drive, b':', b'\\' | b'/', ..] => drive.is_ascii_alphabetic(),
        [b'\\', b'\\', ..] => true,
        _ => false,
    }
}

/// The default `DATA_DIR` on `os`; `None` when it depends on a home directory that is not
/// known.
pub fn data_dir(os: Os, mode: Mode, env: &Env) -> Option<PathBuf> {
    let base = match (os, mode) {
        (Os::Windows, Mode::Fleet) => Some(program_data(env.get("ProgramData").map(|v| v.as_os_str()))),
        (Os::Windows, _) => {
            env.get("LOCALAPPDATA").map(PathBuf::from).or_else(|| env.home().map(|h| h.join("AppData").join("Local")))
        }
        (Os::MacOs, Mode::Fleet) => Some(PathBuf::from("/Library/Application Support")),
        (Os::MacOs, _) => home(os, env).map(|h| h.join("Library").join("Application Support")),
        (Os::Linux, Mode::Fleet) => Some(PathBuf::from("/var/lib")),
        (Os::Linux, _) => {
            // A unix absolute path (`has_root`, not `is_absolute`: the rule is unix's, whichever
            // system evaluates it).
            let xdg = env.get("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.has_root());
            xdg.or_else(|| home(os, env).map(|h| h.join(".local").join("share")))
        }
        // A system added to `Os` later: the unix convention until it has its own rule.
        _ => home(os, env).map(|h| h.join(".local").join("share")),
    };
    base.map(|b| b.join(APP))
}

/// The fleet configuration file's standard place on `os`; `program_data` is Windows'
/// `%ProgramData%`.
pub fn system_config(os: Os, program_data_var: Option<&OsStr>) -> PathBuf {
    match os {
        Os::Windows => program_data(program_data_var).join(APP).join("agent.yaml"),
        _ => PathBuf::from("/etc/cropscode/agent.yaml"),
    }
}

/// `%ProgramData%`, which Windows always sets; its standard value otherwise.
fn program_data(var: Option<&OsStr>) -> PathBuf {
    var.filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied(), PathBuf::from("unused"))
    }

    #[test]
    fn home_on_windows_is_a_windows_path() {
        let e = env(&[("HOME", "/root"), ("USERPROFILE", r"C:\users\root")]);
        assert_eq!(home(Os::Windows, &e), Some(PathBuf::from(r"C:\users\root")));
        assert_eq!(home(Os::Linux, &e), Some(PathBuf::from("/root")));
        let e = env(&[("HOME", "D:/home/u"), ("USERPROFILE", r"C:\Users\u")]);
        assert_eq!(home(Os::Windows, &e), Some(PathBuf::from("D:/home/u")));
        let e = env(&[("HOME", r"\\server\home\u")]);
        assert_eq!(home(Os::Windows, &e), Some(PathBuf::from(r"\\server\home\u")));
        // The BYOM files are ~/.cropscode/… there too.
        let e = env(&[("USERPROFILE", r"C:\Users\u"), ("LOCALAPPDATA", r"C:\Users\u\AppData\Local")]);
        assert_eq!(
            home(Os::Windows, &e).map(|h| h.join(".cropscode").join("credentials.json")),
            Some(PathBuf::from(r"C:\Users\u").join(".cropscode").join("credentials.json"))
        );
    }

    #[test]
    fn linux_data_dirs() {
        let e = env(&[("HOME", "/home/u")]);
        assert_eq!(data_dir(Os::Linux, Mode::Byom, &e), Some("/home/u/.local/share/cropscode".into()));
        assert_eq!(data_dir(Os::Linux, Mode::Fleet, &e), Some("/var/lib/cropscode".into()));
        let e = env(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "/data/u")]);
        assert_eq!(data_dir(Os::Linux, Mode::Byom, &e), Some("/data/u/cropscode".into()));
        // A relative XDG_DATA_HOME is ignored, as the XDG specification says.
        let e = env(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "data")]);
        assert_eq!(data_dir(Os::Linux, Mode::Byom, &e), Some("/home/u/.local/share/cropscode".into()));
    }

    #[test]
    fn macos_data_dirs() {
        let e = env(&[("HOME", "/Users/u"), ("XDG_DATA_HOME", "/data/u")]);
        assert_eq!(data_dir(Os::MacOs, Mode::Byom, &e), Some("/Users/u/Library/Application Support/cropscode".into()));
        assert_eq!(data_dir(Os::MacOs, Mode::Fleet, &e), Some("/Library/Application Support/cropscode".into()));
        assert_eq!(system_config(Os::MacOs, None), PathBuf::from("/etc/cropscode/agent.yaml"));
    }

    #[test]
    fn windows_data_dirs_and_fleet_config() {
        let e = env(&[
            ("USERPROFILE", r"C:\Users\u"),
            ("LOCALAPPDATA", r"C:\Users\u\AppData\Local"),
            ("ProgramData", r"D:\ProgramData"),
        ]);
        assert_eq!(
            data_dir(Os::Windows, Mode::Byom, &e),
            Some(PathBuf::from(r"C:\Users\u\AppData\Local").join("cropscode"))
        );
        assert_eq!(data_dir(Os::Windows, Mode::Fleet, &e), Some(PathBuf::from(r"D:\ProgramData").join("cropscode")));
        // Without LOCALAPPDATA: the profile's AppData\Local; without ProgramData: C:\ProgramData.
        let e = env(&[("HOME", r"C:\Users\u")]);
        assert_eq!(
            data_dir(Os::Windows, Mode::Byom, &e),
            Some(PathBuf::from(r"C:\Users\u").join("AppData").join("Local").join("cropscode"))
        );
        assert_eq!(data_dir(Os::Windows, Mode::Fleet, &e), Some(PathBuf::from(r"C:\ProgramData").join("cropscode")));
        assert_eq!(
            system_config(Os::Windows, Some(OsStr::new(r"D:\ProgramData"))),
            PathBuf::from(r"D:\ProgramData").join("cropscode").join("agent.yaml")
        );
        assert_eq!(
            system_config(Os::Windows, None),
            PathBuf::from(r"C:\ProgramData").join("cropscode").join("agent.yaml")
        );
        assert_eq!(system_config(Os::Linux, None), PathBuf::from("/etc/cropscode/agent.yaml"));
    }
}
