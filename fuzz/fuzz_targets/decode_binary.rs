//! The binary frame decoder: never panics, and what it accepts encodes back to
//! the same bytes.
#![no_main]

use cropscode_core::protocol::{Limits, StreamFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max = Limits::DEFAULT.max_binary_frame_bytes as usize;
    for limit in [max, 16] {
        if let Ok(frame) = StreamFrame::decode(data, limit) {
            assert!(data.len() <= limit);
            assert_eq!(frame.encode(), data, "re-encoding {frame:?}");
        }
    }
});
