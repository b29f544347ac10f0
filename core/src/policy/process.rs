//! Every way a command starts a process: execs and terminals (privilege and
//! user), `container.setup` (files it writes) and `image.build` (the build's
//! network and the `RUN` flags of its Dockerfile).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::rules::{judge_namespace, judge_option_user};
use super::{Control, Policy, Refusal};
use crate::protocol::commands::{ContainerSetup, ImageBuild};

/// Setuid and setgid bits of a file mode.
const SET_ID_BITS: u32 = 0o6000;

pub(super) fn judge_process(policy: &Policy, privileged: bool, user: Option<&str>) -> Result<(), Refusal> {
    if !policy.floor.at_least_baseline() {
        return Ok(());
    }
    if privileged {
        return Err(policy.refuse(Control::Privileged, "privileged execs are not allowed (`privileged`)"));
    }
    if policy.floor.restricted()
        && let Some(user) = user
    {
        judge_option_user(policy, "user", user)?;
    }
    Ok(())
}

/// The user an image or container runs as when the request names none (`""`: root).
pub(super) fn judge_effective_user(policy: &Policy, user: &str) -> Result<(), Refusal> {
    if !policy.floor.restricted() {
        return Ok(());
    }
    let user = user.trim();
    if user.is_empty() {
        return Err(policy.refuse(
            Control::RunAsRoot,
            "the image runs as root (no USER) and the request names no `user`; set `user` to a non-zero numeric uid",
        ));
    }
    judge_option_user(policy, "the image's or container's user", user)
}

pub(super) fn judge_setup(policy: &Policy, request: &ContainerSetup) -> Result<(), Refusal> {
    if !policy.floor.restricted() {
        return Ok(());
    }
    for (i, file) in request.files.iter().enumerate() {
        if file.mode() & SET_ID_BITS != 0 {
            return Err(policy.refuse(
                Control::AllowPrivilegeEscalation,
                format!("setuid and setgid files are not allowed (`files[{i}].mode` {:o})", file.mode()),
            ));
        }
    }
    Ok(())
}

pub(super) fn judge_build(policy: &Policy, request: &ImageBuild) -> Result<(), Refusal> {
    if !policy.floor.at_least_baseline() {
        return Ok(());
    }
    if let Some(mode) = &request.network_mode {
        judge_namespace(policy, "networkMode", mode, Control::HostNetwork, &["default", "bridge", "none", "private"])?;
    }
    judge_dockerfile(policy, &request.dockerfile)
}

/// The flags of every `RUN` (and `ONBUILD RUN`) instruction: no host network,
/// no insecure (privileged) sandbox, no devices. Conservative: a flag is
/// judged wherever the worker cannot rule it out.
fn judge_dockerfile(policy: &Policy, dockerfile: &str) -> Result<(), Refusal> {
    for (line, instruction) in instructions(dockerfile) {
        let mut words = instruction.split_whitespace();
        let mut keyword = words.next().unwrap_or_default();
        if keyword.eq_ignore_ascii_case("ONBUILD") {
            keyword = words.next().unwrap_or_default();
        }
        if !keyword.eq_ignore_ascii_case("RUN") {
            continue;
        }
        let mut words = words.peekable();
        while let Some(word) = words.next() {
            let Some(flag) = word.strip_prefix("--") else { break };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_ascii_lowercase(), String::from(unquote(value))),
                None => (flag.to_ascii_lowercase(), words.peek().map(|v| String::from(unquote(v))).unwrap_or_default()),
            };
            let refuse = |control: Control, why: &str| {
                Err(policy.refuse(control, format!("{why} (`dockerfile` line {line}: `RUN --{flag}`)")))
            };
            match name.as_str() {
                "network" if !matches!(value.as_str(), "none" | "default") => {
                    return refuse(Control::HostNetwork, "builds may not use the host's network");
                }
                "security" if value != "sandbox" => {
                    return refuse(Control::Privileged, "insecure (privileged) build steps are not allowed");
                }
                "device" => return refuse(Control::Devices, "host devices are not allowed in builds"),
                _ => {}
            }
        }
    }
    Ok(())
}

fn unquote(value: &str) -> &str {
    value.trim_matches(|c| c == '"' || c == '\'')
}

/// The Dockerfile's instructions with their first line number, continuation
/// lines joined (the escape character from a leading `# escape=` directive,
/// `\` by default), comment lines dropped.
fn instructions(dockerfile: &str) -> Vec<(usize, String)> {
    let mut escape = '\\';
    for line in dockerfile.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else { break };
        let Some((key, value)) = directive.split_once('=') else { break };
        if key.trim().eq_ignore_ascii_case("escape") {
            escape = value.trim().chars().next().unwrap_or('\\');
        }
    }
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in dockerfile.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (text, continues) = match trimmed.strip_suffix(escape) {
            Some(text) => (text, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(text);
        if !continues && let Some(done) = current.take() {
            out.push(done);
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_join_continuations_and_honour_the_escape_directive() {
        let joined = instructions("FROM x\nRUN \\\n  # comment\n  --network=host true\n");
        assert_eq!(joined.len(), 2);
        assert_eq!(joined[1].0, 2);
        assert!(joined[1].1.contains("--network=host"), "{joined:?}");
        let backtick = instructions("# escape=`\nFROM x\nRUN echo C:\\\nRUN --network=host true\n");
        assert_eq!(backtick.len(), 3, "{backtick:?}");
    }
}
