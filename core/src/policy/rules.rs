//! The rules more than one family of commands applies: the syntax of a
//! security option, the user a process may run as, and a namespace mode.
//!
//! ```text
//!  create::judge  ──┬──► judge_namespace, judge_option_user, split_option
//!  process::judge_* ┘        │
//!                            └──► Ok, or the Refusal naming the Control
//! ```
//!
//! Leaf module: it uses only the policy's own types, so `create` and
//! `process` both depend on it and never on each other.

use alloc::format;

use super::{Control, Policy, Refusal};

/// `key`, `key=value` or the engines' legacy `key:value`: split at the first `=` or `:`.
pub(super) fn split_option(option: &str) -> (&str, Option<&str>) {
    match option.find(['=', ':']) {
        Some(at) => (&option[..at], Some(&option[at + 1..])),
        None => (option, None),
    }
}

/// A `user` a request names, under `restricted`: a non-zero numeric uid
/// (`1000`, `1000:1000`, `1000:staff`). A name cannot be verified without the
/// image's `/etc/passwd` (where any name may be uid 0), so it is refused, as
/// Kubernetes refuses a non-numeric user under `runAsNonRoot`.
pub(super) fn judge_option_user(policy: &Policy, field: &str, user: &str) -> Result<(), Refusal> {
    if !policy.floor.restricted() {
        return Ok(());
    }
    let uid = user.split_once(':').map_or(user, |(uid, _)| uid);
    match uid.parse::<u32>() {
        Ok(0) => Err(policy.refuse(Control::RunAsRoot, format!("running as root is not allowed (`{field}` `{user}`)"))),
        Ok(_) => Ok(()),
        Err(_) if uid == "root" => {
            Err(policy.refuse(Control::RunAsRoot, format!("running as root is not allowed (`{field}` `{user}`)")))
        }
        Err(_) => Err(policy.refuse(
            Control::RunAsRoot,
            format!("user name `{uid}` cannot be verified as non-root; use a numeric uid (`{field}`)"),
        )),
    }
}

/// Judges one namespace mode (also `image.build`'s `networkMode`).
pub(super) fn judge_namespace(
    policy: &Policy,
    field: &str,
    mode: &str,
    host_control: Control,
    private: &[&str],
) -> Result<(), Refusal> {
    if mode.is_empty() {
        return Ok(());
    }
    let base = mode.split_once(':').map_or(mode, |(base, _)| base);
    if base == "container" {
        return Err(policy.refuse(
            Control::ContainerNamespaces,
            format!("joining another container's namespace is not allowed (`{field}` `{mode}`)"),
        ));
    }
    if private.contains(&mode) {
        return Ok(());
    }
    // Podman's `auto:size=…` and `keep-id:uid=…` only tune a private user namespace.
    if field == "usernsMode" && matches!(base, "auto" | "keep-id") {
        return Ok(());
    }
    // A user-defined network, by name: nothing like `host`, a path or options.
    let plain_name = mode.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if field == "networkMode" && plain_name && mode != "host" {
        return Ok(());
    }
    let why =
        if mode == "host" { "the host's namespace is not allowed" } else { "only a private namespace is allowed" };
    Err(policy.refuse(host_control, format!("{why} (`{field}` `{mode}`)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_at_the_first_separator() {
        assert_eq!(split_option("no-new-privileges"), ("no-new-privileges", None));
        assert_eq!(split_option("label=type:spc_t"), ("label", Some("type:spc_t")));
        assert_eq!(split_option("label:type:spc_t"), ("label", Some("type:spc_t")));
        assert_eq!(split_option("seccomp=unconfined"), ("seccomp", Some("unconfined")));
    }
}
