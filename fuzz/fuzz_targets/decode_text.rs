//! The text frame decoder on arbitrary input: never panics, every refusal has
//! a reply that encodes, and every decoded command survives a round trip
//! through its params (what an orchestrator would send).
#![no_main]

use cropscode_core::protocol::{Command, Incoming, Limits, decode_text, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Also under tight limits, so the size, depth and string checks are reached often.
    let tight = Limits {
        max_text_frame_bytes: 512,
        max_json_depth: 4,
        max_string_bytes: 64,
        max_id_bytes: 8,
        ..Limits::DEFAULT
    };
    for limits in [Limits::DEFAULT, tight] {
        match decode_text(text, &limits) {
            Ok(Incoming::Command { id, command }) => {
                assert!(id.len() <= limits.max_id_bytes as usize, "id over its bound: {id:?}");
                let mut expected = command.clone();
                // A git credential is never serialized back (it is a Secret).
                if let Command::ContainerSetup(setup) = &mut expected
                    && let Some(repo) = &mut setup.repo
                {
                    repo.credential = None;
                }
                let again = Command::decode(command.name(), command.params_json())
                    .unwrap_or_else(|e| panic!("{} params do not decode again: {e:?}", command.name()));
                assert_eq!(again, expected, "round trip of {}", command.name());
            }
            Ok(_) => {}
            Err(error) => {
                let reply = encode(&error.reply());
                assert!(reply.len() < 4096 + limits.max_id_bytes as usize * 8, "reply of {} bytes", reply.len());
            }
        }
    }
});
