//! Field checks shared by the params structs.
//!
//! Every check takes the field's wire path (`image`, `mounts[2].target`) so
//! that a refusal names exactly what is wrong; the first failing check wins.
//! The rules are the ones `docs/protocol.md` states; the bounds are in
//! [`super::bounds`].

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::fmt::{self, Display};

use super::bounds::*;

/// Outcome of a check: `Err` carries the message for `invalid_request`.
pub(crate) type Check = Result<(), String>;

/// The wire path `parent.key` of a map entry or nested field.
pub(crate) struct Key<'a>(pub &'a dyn Display, pub &'a str);

impl Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The wire path `parent[i]` of a list element.
pub(crate) struct Index<'a>(pub &'a dyn Display, pub usize);

impl Display for Index<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// `` `field`: why ``.
pub(crate) fn fail(field: &dyn Display, why: impl Display) -> String {
    format!("`{field}`: {why}")
}

pub(crate) fn count(field: &dyn Display, len: usize, max: usize) -> Check {
    if len > max {
        return Err(fail(field, format_args!("{len} entries exceed the limit of {max}")));
    }
    Ok(())
}

pub(crate) fn max_bytes(field: &dyn Display, value: &str, max: usize) -> Check {
    if value.len() > max {
        return Err(fail(field, format_args!("{} bytes exceed the limit of {max}", value.len())));
    }
    Ok(())
}

pub(crate) fn non_empty(field: &dyn Display, value: &str, max: usize) -> Check {
    if value.is_empty() {
        return Err(fail(field, "must not be empty"));
    }
    max_bytes(field, value, max)
}

/// Free text that reaches an engine: no control characters (NUL, newline, escape, …).
pub(crate) fn text(field: &dyn Display, value: &str, max: usize) -> Check {
    max_bytes(field, value, max)?;
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(fail(field, format_args!("must not contain control character U+{:04X}", u32::from(c))));
    }
    Ok(())
}

/// Printable ASCII without spaces: option values such as `networkMode` or a sysctl key.
pub(crate) fn token(field: &dyn Display, value: &str, max: usize) -> Check {
    non_empty(field, value, max)?;
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(fail(field, "must be printable ASCII without whitespace"));
    }
    Ok(())
}

fn charset(
    field: &dyn Display,
    value: &str,
    max: usize,
    first: fn(u8) -> bool,
    rest: fn(u8) -> bool,
    rule: &str,
) -> Check {
    non_empty(field, value, max)?;
    let bytes = value.as_bytes();
    if !first(bytes[0]) || !bytes[1..].iter().all(|&b| rest(b)) {
        return Err(fail(field, format_args!("must match {rule}")));
    }
    Ok(())
}

/// Container names, container ids and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}`.
pub(crate) fn container_name(field: &dyn Display, value: &str) -> Check {
    charset(
        field,
        value,
        MAX_ID_BYTES,
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'),
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}",
    )
}

/// Tenants, session ids and exec ids: `[a-zA-Z0-9][a-zA-Z0-9_.:@-]{0,127}`.
pub(crate) fn identifier(field: &dyn Display, value: &str) -> Check {
    charset(
        field,
        value,
        MAX_ID_BYTES,
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'),
        "[a-zA-Z0-9][a-zA-Z0-9_.:@-]{0,127}",
    )
}

/// Image references: `[a-zA-Z0-9][a-zA-Z0-9._/:@-]*`, at most 512 bytes, without an
/// empty, `.` or `..` path component (the reference becomes part of an engine API path).
pub(crate) fn image_ref(field: &dyn Display, value: &str) -> Check {
    charset(
        field,
        value,
        MAX_IMAGE_REF_BYTES,
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b':' | b'@' | b'-'),
        "an image reference [a-zA-Z0-9][a-zA-Z0-9._/:@-]*",
    )?;
    if value.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err(fail(field, "must not have an empty, `.` or `..` path component"));
    }
    Ok(())
}

/// Environment variable and build argument names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn env_name(field: &dyn Display, value: &str) -> Check {
    charset(
        field,
        value,
        MAX_ENV_NAME_BYTES,
        |b| b.is_ascii_alphabetic() || b == b'_',
        |b| b.is_ascii_alphanumeric() || b == b'_',
        "[A-Za-z_][A-Za-z0-9_]*",
    )
}

/// Capability names such as `NET_ADMIN`, `CAP_NET_ADMIN` or `ALL`: `[A-Za-z0-9_]{1,64}`.
pub(crate) fn capability(field: &dyn Display, value: &str) -> Check {
    charset(
        field,
        value,
        64,
        |b| b.is_ascii_alphanumeric() || b == b'_',
        |b| b.is_ascii_alphanumeric() || b == b'_',
        "[A-Za-z0-9_]{1,64}",
    )
}

/// A user for a container or an exec: `name`, `uid`, `name:group` or `uid:gid`.
pub(crate) fn user(field: &dyn Display, value: &str) -> Check {
    let ok = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    non_empty(field, value, MAX_OPTION_BYTES)?;
    let valid = match value.split_once(':') {
        Some((user, group)) => ok(user) && ok(group),
        None => ok(value),
    };
    if !valid || value.starts_with('-') {
        return Err(fail(field, "must be `user`, `uid`, `user:group` or `uid:gid` of [a-zA-Z0-9_.-]"));
    }
    Ok(())
}

/// A hostname label sequence: `[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}`.
pub(crate) fn hostname(field: &dyn Display, value: &str) -> Check {
    charset(
        field,
        value,
        63,
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'),
        "[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}",
    )
}

/// A signal: `TERM`, `SIGTERM` or a number 1..=64.
pub(crate) fn signal(field: &dyn Display, value: &str) -> Check {
    if let Ok(n) = value.parse::<u8>() {
        if (1..=64).contains(&n) {
            return Ok(());
        }
        return Err(fail(field, "a signal number must be 1..=64"));
    }
    charset(
        field,
        value,
        16,
        |b| b.is_ascii_uppercase(),
        |b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-'),
        "a signal name such as TERM, SIGKILL or RTMIN+1",
    )
}

fn path_chars(field: &dyn Display, value: &str) -> Check {
    non_empty(field, value, MAX_PATH_BYTES)?;
    text(field, value, MAX_PATH_BYTES)?;
    if value.split(['/', '\\']).any(|part| part == "..") {
        return Err(fail(field, "must not contain `..`"));
    }
    Ok(())
}

/// A path inside a container: absolute (`/…`), no `..`, no control characters.
pub(crate) fn container_path(field: &dyn Display, value: &str) -> Check {
    path_chars(field, value)?;
    if !value.starts_with('/') {
        return Err(fail(field, "must be an absolute path"));
    }
    Ok(())
}

/// A path on the worker's machine: absolute (`/…`, or `C:\…` on Windows), no `..`, no control characters.
pub(crate) fn host_path(field: &dyn Display, value: &str) -> Check {
    path_chars(field, value)?;
    let b = value.as_bytes();
    let windows_absolute = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\');
    if !value.starts_with('/') && !windows_absolute {
        return Err(fail(field, "must be an absolute path"));
    }
    Ok(())
}

/// A path inside a build context: relative, no `..`, no control characters, `/` as separator.
pub(crate) fn relative_path(field: &dyn Display, value: &str) -> Check {
    path_chars(field, value)?;
    if value.starts_with('/') || value.contains('\\') {
        return Err(fail(field, "must be a relative path with `/` separators"));
    }
    if value.split('/').all(|part| part.is_empty() || part == ".") {
        return Err(fail(field, "must name a file"));
    }
    Ok(())
}

/// An argument vector: at most [`MAX_ARGS`] arguments of at most [`MAX_ARG_BYTES`], no NUL.
pub(crate) fn argv(field: &dyn Display, args: &[String], allow_empty: bool) -> Check {
    if args.is_empty() && !allow_empty {
        return Err(fail(field, "must contain at least the program"));
    }
    count(field, args.len(), MAX_ARGS)?;
    for (i, arg) in args.iter().enumerate() {
        max_bytes(&Index(field, i), arg, MAX_ARG_BYTES)?;
        if arg.contains('\0') {
            return Err(fail(&Index(field, i), "must not contain NUL"));
        }
    }
    if args.first().is_some_and(|program| program.is_empty()) {
        return Err(fail(&Index(field, 0), "the program must not be empty"));
    }
    Ok(())
}

/// An environment map (also used for `buildArgs`): names `[A-Za-z_][A-Za-z0-9_]*`, values without NUL.
pub(crate) fn env(field: &dyn Display, vars: &BTreeMap<String, String>) -> Check {
    count(field, vars.len(), MAX_ENV_ENTRIES)?;
    for (name, value) in vars {
        env_name(&Key(field, name), name)?;
        max_bytes(&Key(field, name), value, MAX_ENV_VALUE_BYTES)?;
        if value.contains('\0') {
            return Err(fail(&Key(field, name), "must not contain NUL"));
        }
    }
    Ok(())
}

/// Labels: keys printable ASCII without whitespace or `=`, not under [`RESERVED_LABEL_PREFIX`]; values without control characters.
pub(crate) fn labels(field: &dyn Display, labels: &BTreeMap<String, String>) -> Check {
    count(field, labels.len(), MAX_LABELS)?;
    for (key, value) in labels {
        let key_field = Key(field, key);
        token(&key_field, key, MAX_LABEL_KEY_BYTES)?;
        if key.contains('=') {
            return Err(fail(&key_field, "a label key must not contain `=`"));
        }
        if key.starts_with(RESERVED_LABEL_PREFIX) {
            return Err(fail(
                &key_field,
                format_args!("the prefix `{RESERVED_LABEL_PREFIX}` is reserved for the worker"),
            ));
        }
        text(&key_field, value, MAX_LABEL_VALUE_BYTES)?;
    }
    Ok(())
}

/// A bounded timeout or grace period in milliseconds: 1..=max.
pub(crate) fn millis(field: &dyn Display, value: u64, max: u64) -> Check {
    if value == 0 || value > max {
        return Err(fail(field, format_args!("must be 1..={max} ms")));
    }
    Ok(())
}

/// An integer in `min..=max`.
pub(crate) fn range<T: PartialOrd + Display>(field: &dyn Display, value: T, min: T, max: T) -> Check {
    if value < min || value > max {
        return Err(fail(field, format_args!("must be {min}..={max}")));
    }
    Ok(())
}

/// A git URL: `https://`, `http://`, `ssh://`, `git://`, `file://` or scp-like `user@host:path`.
///
/// Refused: remote-helper syntax (`ext::sh -c …` runs a command), anything git
/// could read as an option (`-…`), whitespace and control characters, and a
/// password inside the URL (it belongs in `credential`, where it cannot be logged).
pub(crate) fn git_url(field: &dyn Display, value: &str) -> Check {
    token(field, value, MAX_URL_BYTES)?;
    if value.starts_with('-') || value.contains("::") {
        return Err(fail(field, "must be a plain git URL (no options, no remote-helper `::` syntax)"));
    }
    let schemes = ["https://", "http://", "ssh://", "git://", "file://"];
    // ssh reads a host or user starting with `-` as an option (`ssh://-oProxyCommand=…`).
    let option_like = |authority: &str| authority.split('@').any(|part| part.starts_with('-'));
    if let Some(rest) = schemes.iter().find_map(|scheme| value.strip_prefix(scheme)) {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')) {
            return Err(fail(field, "must not carry a password; send it as `credential`"));
        }
        if option_like(authority) {
            return Err(fail(field, "the host and user must not start with `-`"));
        }
        return Ok(());
    }
    // scp-like: `[user@]host:path`, with no `/` before the `:`.
    match value.split_once(':') {
        Some((host, _)) if option_like(host) => Err(fail(field, "the host and user must not start with `-`")),
        Some((host, path)) if !host.is_empty() && !host.contains('/') && !path.is_empty() => Ok(()),
        _ => Err(fail(field, "must be an https://, http://, ssh://, git://, file:// or user@host:path URL")),
    }
}

/// A git ref (branch, tag or commit): no leading `-`, no whitespace, none of `~^:?*[\`, no `..`.
pub(crate) fn git_ref(field: &dyn Display, value: &str) -> Check {
    token(field, value, MAX_OPTION_BYTES)?;
    if value.starts_with('-') || value.contains("..") || value.contains(['~', '^', ':', '?', '*', '[', '\\']) {
        return Err(fail(field, "must be a branch, tag or commit name"));
    }
    Ok(())
}

/// An IP address literal.
pub(crate) fn ip_addr(field: &dyn Display, value: &str) -> Check {
    if value.parse::<core::net::IpAddr>().is_err() {
        return Err(fail(field, "must be an IPv4 or IPv6 address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_have_no_dot_components() {
        for good in ["busybox", "ghcr.io/acme/dev:1.4", "localhost:5000/a/b@sha256:00", "a.b/c..d:1"] {
            assert_eq!(image_ref(&"image", good), Ok(()), "{good}");
        }
        for bad in ["a/../b", "a/./b", "a//b", "a/", "a/..", "a/b/."] {
            assert!(image_ref(&"image", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn git_hosts_and_users_cannot_be_ssh_options() {
        for bad in ["ssh://-oProxyCommand=touch%20x/repo", "ssh://git@-oProxyCommand=x/r", "git@-oProxyCommand=x:r"] {
            assert!(git_url(&"repo.url", bad).is_err(), "{bad}");
        }
        for good in ["ssh://git@host/r-x", "git@host:-repo", "https://host/-x.git"] {
            assert_eq!(git_url(&"repo.url", good), Ok(()), "{good}");
        }
    }
}
