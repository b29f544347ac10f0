//! Each command's params decoder with arbitrary JSON, then the security floor
//! on whatever decodes: never panics; a refusal always names a known control
//! and reads back from its wire form (the error's `control`); an accepted
//! request stays accepted after the floor's constraints are applied.
#![no_main]

use cropscode_core::policy::{Control, Policy, SecurityFloor};
use cropscode_core::protocol::{Command, WireError};
use cropscode_core::protocol::commands::COMMAND_NAMES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else { return };
    let name = COMMAND_NAMES[usize::from(selector) % COMMAND_NAMES.len()];
    let Ok(params) = serde_json::from_slice::<serde_json::Value>(json) else { return };
    let Ok(command) = Command::decode(name, params) else { return };
    assert_eq!(command.name(), name);
    for floor in SecurityFloor::ALL {
        let policy = Policy::new(floor);
        match policy.enforce(command.clone()) {
            Ok(enforced) => {
                let again = policy.enforce(enforced.clone()).expect("an enforced command stays accepted");
                assert_eq!(again, enforced, "constraints are idempotent");
            }
            Err(refusal) => {
                assert!(Control::ALL.contains(&refusal.control), "{refusal:?}");
                let wire = serde_json::to_string(&refusal.to_wire()).expect("an error encodes");
                let back: WireError = serde_json::from_str(&wire).expect("and decodes");
                assert_eq!(back.refusal.map(|r| r.control), Some(refusal.control));
            }
        }
    }
});
