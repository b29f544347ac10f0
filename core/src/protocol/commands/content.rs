//! Values carried inside params and results: environment maps, inline files,
//! and the encoding of bytes inside JSON strings.
//!
//! Environment values and inline contents often hold secrets (API keys in
//! `env`, keystrokes, generated files), so their `Debug` output shows names and
//! sizes only: a `?command` in a log line cannot leak them.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Environment variables (or build arguments) by name. `Debug` prints the names only.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnvVars(pub BTreeMap<String, String>);

impl EnvVars {
    /// True when there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variables as `NAME=value` strings, the form the engines' APIs take.
    pub fn to_pairs(&self) -> Vec<String> {
        self.0.iter().map(|(name, value)| alloc::format!("{name}={value}")).collect()
    }
}

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|name| (name, Redacted))).finish()
    }
}

impl<const N: usize> From<[(&str, &str); N]> for EnvVars {
    fn from(pairs: [(&str, &str); N]) -> Self {
        EnvVars(pairs.iter().map(|(k, v)| (String::from(*k), String::from(*v))).collect())
    }
}

/// Prints `***`.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Prints `<N bytes>`.
pub(crate) struct Length(pub usize);

impl fmt::Debug for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// How bytes are carried in a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The string is the text itself. For output, bytes that are not valid
    /// UTF-8 are replaced with U+FFFD (lossy).
    #[default]
    Utf8,
    /// The string is standard base64 (RFC 4648 §4, with `=` padding): exact bytes.
    Base64,
}

impl Encoding {
    /// Encodes bytes for a result field.
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Base64 => base64_encode(bytes),
        }
    }

    /// Decodes a params field to bytes.
    pub fn decode(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
            Encoding::Base64 => base64_decode(text),
        }
    }
}

/// A file sent inline: `container.setup` `files` and `image.build` `context`.
///
/// `Debug` prints the size of `content`, not the content.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineFile {
    /// Where the file goes: absolute in the container (`container.setup`),
    /// relative to the context root (`image.build`).
    pub path: String,
    /// The file's contents in `encoding`.
    pub content: String,
    /// How `content` is encoded.
    #[serde(default)]
    pub encoding: Encoding,
    /// Permission bits, e.g. `420` (= `0o644`). Default `0o644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

impl InlineFile {
    /// The file's bytes. Cannot fail on a file that passed decoding.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        self.encoding.decode(&self.content)
    }

    /// The permission bits to write.
    pub fn mode(&self) -> u32 {
        self.mode.unwrap_or(super::bounds::DEFAULT_FILE_MODE)
    }
}

impl fmt::Debug for InlineFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineFile")
            .field("path", &self.path)
            .field("content", &Length(self.content.len()))
            .field("encoding", &self.encoding)
            .field("mode", &self.mode)
            .finish()
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding: the encoding of `outputEncoding: base64` and of
/// `encoding: base64` file contents.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard, padded base64; the error says what is wrong and where.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(String::from("base64 length must be a multiple of 4"));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(String::from("misplaced base64 padding"));
        }
        let mut n = 0u32;
        for (i, &b) in quad.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                match BASE64.iter().position(|&c| c == b) {
                    Some(v) => v as u32,
                    None => return Err(alloc::format!("invalid base64 character at byte {}", q * 4 + i)),
                }
            };
            n = (n << 6) | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0, 255, 128, 7]] {
            let encoded = base64_encode(input);
            assert_eq!(base64_decode(&encoded).unwrap(), input, "{encoded}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }

    #[test]
    fn base64_rejects_bad_input() {
        for bad in ["Zm8", "Zm8*", "Z===", "Zm==Zm8=", "Zm 8"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_debug_hides_values() {
        let env = EnvVars::from([("API_KEY", "sk-secret")]);
        let shown = alloc::format!("{env:?}");
        assert!(shown.contains("API_KEY") && !shown.contains("sk-secret"), "{shown}");
    }
}
