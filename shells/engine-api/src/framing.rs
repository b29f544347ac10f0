//! Streamed answers: JSON progress messages (pull, build) and process output (exec, logs).
//!
//! Pull and build answer with a sequence of JSON objects, one per line on both engines;
//! [`JsonStream`] does not rely on the line breaks and decodes whatever complete values
//! have arrived. Process output without a TTY comes in Docker's multiplexed format: each
//! frame is an 8-byte header (stream type: 0 stdin, 1 stdout, 2 stderr, 3 engine error;
//! three zero bytes; payload length as u32 big-endian) followed by the payload.
//! [`MultiplexDecoder`] is the pure decoder of that format; [`OutputStream`] feeds it
//! from the connection. With a TTY the output is raw bytes, all of it stdout.

use std::collections::VecDeque;
use std::marker::PhantomData;

use bytes::Bytes;
use futures_lite::AsyncReadExt;
use serde::de::DeserializeOwned;

use crate::client::ResponseBody;
use crate::error::{EngineError, Result};
use crate::io::Upgraded;

/// The longest single JSON message accepted in a stream.
const MAX_JSON_MESSAGE: usize = 4 * 1024 * 1024;

/// A stream of JSON values from the engine.
pub struct JsonStream<T> {
    body: ResponseBody,
    buf: Vec<u8>,
    done: bool,
    _message: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for JsonStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonStream").field("buffered", &self.buf.len()).finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> JsonStream<T> {
    pub(crate) fn new(body: ResponseBody) -> Self {
        JsonStream { body, buf: Vec::new(), done: false, _message: PhantomData }
    }

    /// The next value, or `None` at the end of the answer. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<T>> {
        loop {
            match decode_one(&mut self.buf) {
                Decoded::Value(value) => return Some(Ok(value)),
                Decoded::Invalid(message) => {
                    self.done = true;
                    self.buf.clear();
                    return Some(Err(EngineError::Protocol(message)));
                }
                Decoded::NeedMore => {}
            }
            if self.done {
                if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                    self.buf.clear();
                    return Some(Err(EngineError::Protocol("the stream ended inside a JSON message".into())));
                }
                return None;
            }
            if self.buf.len() > MAX_JSON_MESSAGE {
                self.done = true;
                self.buf.clear();
                return Some(Err(EngineError::Protocol(format!(
                    "a streamed message exceeds {MAX_JSON_MESSAGE} bytes"
                ))));
            }
            match self.body.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

enum Decoded<T> {
    Value(T),
    NeedMore,
    Invalid(String),
}

/// Takes the first complete JSON value off the front of `buf`.
fn decode_one<T: DeserializeOwned>(buf: &mut Vec<u8>) -> Decoded<T> {
    let Some(start) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
        buf.clear();
        return Decoded::NeedMore;
    };
    let mut values = serde_json::Deserializer::from_slice(&buf[start..]).into_iter::<T>();
    match values.next() {
        Some(Ok(value)) => {
            let end = start + values.byte_offset();
            buf.drain(..end);
            Decoded::Value(value)
        }
        Some(Err(e)) if e.is_eof() => Decoded::NeedMore,
        Some(Err(e)) => Decoded::Invalid(format!("bad JSON in a streamed answer: {e}")),
        None => Decoded::NeedMore,
    }
}

/// Which stream a piece of process output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// Standard output (and stdin echoed by the engine).
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of process output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The stream it was written to.
    pub kind: OutputKind,
    /// The bytes.
    pub data: Bytes,
}

/// A decoded frame of the multiplexed format, or part of one (a frame's payload may
/// arrive in several pieces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiplexFrame {
    /// Process output.
    Output(OutputChunk),
    /// The engine reported an error in band (stream type 3).
    EngineError(Bytes),
}

/// Decoder of Docker's multiplexed stdout/stderr format. Pure: bytes in, frames out.
#[derive(Debug, Default, Clone)]
pub struct MultiplexDecoder {
    header: [u8; 8],
    header_len: usize,
    /// Payload bytes still expected for the current frame, and its stream type.
    remaining: usize,
    stream: u8,
}

impl MultiplexDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        MultiplexDecoder::default()
    }

    /// Decodes `input`, appending frames (or pieces of frames) to `out`.
    pub fn decode(&mut self, mut input: Bytes, out: &mut VecDeque<MultiplexFrame>) -> Result<()> {
        while !input.is_empty() {
            if self.remaining == 0 {
                let take = (8 - self.header_len).min(input.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
                self.header_len += take;
                let _ = input.split_to(take);
                if self.header_len < 8 {
                    return Ok(());
                }
                self.header_len = 0;
                self.stream = self.header[0];
                if self.stream > 3 || self.header[1..4] != [0, 0, 0] {
                    return Err(EngineError::Protocol(format!("bad multiplexed stream header {:02x?}", &self.header)));
                }
                self.remaining =
                    u32::from_be_bytes([self.header[4], self.header[5], self.header[6], self.header[7]]) as usize;
                continue;
            }
            let take = self.remaining.min(input.len());
            let data = input.split_to(take);
            self.remaining -= take;
            out.push_back(match self.stream {
                0 | 1 => MultiplexFrame::Output(OutputChunk { kind: OutputKind::Stdout, data }),
                2 => MultiplexFrame::Output(OutputChunk { kind: OutputKind::Stderr, data }),
                _ => MultiplexFrame::EngineError(data),
            });
        }
        Ok(())
    }

    /// Whether the input so far ended on a frame boundary.
    pub fn is_at_boundary(&self) -> bool {
        self.remaining == 0 && self.header_len == 0
    }
}

enum OutputSource {
    Body(ResponseBody),
    Reader(Box<dyn futures_lite::AsyncRead + Unpin + Send>),
}

/// Process output streamed from the engine (exec start, attach).
pub struct OutputStream {
    source: OutputSource,
    /// `None` when the process has a TTY: raw bytes, all stdout.
    decoder: Option<MultiplexDecoder>,
    pending: VecDeque<MultiplexFrame>,
    ended: bool,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStream").field("tty", &self.decoder.is_none()).finish_non_exhaustive()
    }
}

impl OutputStream {
    pub(crate) fn from_body(body: ResponseBody, tty: bool) -> Self {
        OutputStream::new(OutputSource::Body(body), tty)
    }

    /// Output read from an upgraded connection (e.g. [`crate::Upgraded`] of an exec attach).
    pub fn from_upgraded(upgraded: Upgraded, tty: bool) -> Self {
        OutputStream::from_reader(upgraded, tty)
    }

    /// Output read from any byte stream, e.g. the read half of a split [`crate::Upgraded`]
    /// whose write half feeds the process's stdin.
    pub fn from_reader(reader: impl futures_lite::AsyncRead + Unpin + Send + 'static, tty: bool) -> Self {
        OutputStream::new(OutputSource::Reader(Box::new(reader)), tty)
    }

    fn new(source: OutputSource, tty: bool) -> Self {
        OutputStream { source, decoder: (!tty).then(MultiplexDecoder::new), pending: VecDeque::new(), ended: false }
    }

    /// The next piece of output, or `None` when the process closed its output.
    pub async fn next(&mut self) -> Option<Result<OutputChunk>> {
        loop {
            match self.pending.pop_front() {
                Some(MultiplexFrame::Output(chunk)) => return Some(Ok(chunk)),
                Some(MultiplexFrame::EngineError(message)) => {
                    let message = String::from_utf8_lossy(&message).trim().to_owned();
                    return Some(Err(EngineError::Stream { message }));
                }
                None => {}
            }
            if self.ended {
                return None;
            }
            let read = match &mut self.source {
                OutputSource::Body(body) => body.chunk().await,
                OutputSource::Reader(io) => {
                    let mut buf = vec![0u8; 16 * 1024];
                    match io.read(&mut buf).await {
                        Ok(0) => Ok(None),
                        Ok(n) => {
                            buf.truncate(n);
                            Ok(Some(Bytes::from(buf)))
                        }
                        Err(e) => Err(EngineError::Connection(e.to_string())),
                    }
                }
            };
            match read {
                Ok(Some(data)) => match &mut self.decoder {
                    Some(decoder) => {
                        if let Err(e) = decoder.decode(data, &mut self.pending) {
                            self.ended = true;
                            return Some(Err(e));
                        }
                    }
                    None => {
                        self.pending.push_back(MultiplexFrame::Output(OutputChunk { kind: OutputKind::Stdout, data }))
                    }
                },
                Ok(None) => self.ended = true,
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn collect(decoder: &mut MultiplexDecoder, pieces: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut out = VecDeque::new();
        for piece in pieces {
            decoder.decode(Bytes::copy_from_slice(piece), &mut out).unwrap();
        }
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        for frame in out {
            match frame {
                MultiplexFrame::Output(OutputChunk { kind: OutputKind::Stdout, data }) => {
                    stdout.extend_from_slice(&data)
                }
                MultiplexFrame::Output(OutputChunk { kind: OutputKind::Stderr, data }) => {
                    stderr.extend_from_slice(&data)
                }
                MultiplexFrame::EngineError(_) => panic!("unexpected engine error"),
            }
        }
        (stdout, stderr)
    }

    #[test]
    fn demultiplexes_whole_frames() {
        let mut input = frame(1, b"out1 ");
        input.extend(frame(2, b"err"));
        input.extend(frame(1, b"out2"));
        input.extend(frame(1, b""));
        let mut decoder = MultiplexDecoder::new();
        assert_eq!(collect(&mut decoder, &[&input]), (b"out1 out2".to_vec(), b"err".to_vec()));
        assert!(decoder.is_at_boundary());
    }

    #[test]
    fn demultiplexes_frames_split_anywhere() {
        let mut input = frame(1, b"hello ");
        input.extend(frame(2, b"warning"));
        input.extend(frame(1, b"world"));
        for split in 0..input.len() {
            for second in split..input.len() {
                let mut decoder = MultiplexDecoder::new();
                let pieces = [&input[..split], &input[split..second], &input[second..]];
                assert_eq!(collect(&mut decoder, &pieces), (b"hello world".to_vec(), b"warning".to_vec()));
            }
        }
    }

    #[test]
    fn rejects_garbage_and_reports_engine_errors() {
        let mut out = VecDeque::new();
        assert!(MultiplexDecoder::new().decode(Bytes::from_static(b"HTTP/1.1 200 OK\r\n"), &mut out).is_err());
        let mut decoder = MultiplexDecoder::new();
        decoder.decode(Bytes::from(frame(3, b"oops")), &mut out).unwrap();
        assert_eq!(out.pop_front(), Some(MultiplexFrame::EngineError(Bytes::from_static(b"oops"))));
    }

    #[test]
    fn json_values_are_taken_off_the_front() {
        let mut buf = b"{\"status\":\"a\"}\r\n{\"status\":\"b\"}{\"sta".to_vec();
        let first: Decoded<serde_json::Value> = decode_one(&mut buf);
        assert!(matches!(first, Decoded::Value(v) if v["status"] == "a"));
        let second: Decoded<serde_json::Value> = decode_one(&mut buf);
        assert!(matches!(second, Decoded::Value(v) if v["status"] == "b"));
        let third: Decoded<serde_json::Value> = decode_one(&mut buf);
        assert!(matches!(third, Decoded::NeedMore));
        buf.extend_from_slice(b"tus\":\"c\"}\n");
        let fourth: Decoded<serde_json::Value> = decode_one(&mut buf);
        assert!(matches!(fourth, Decoded::Value(v) if v["status"] == "c"));
        let mut bad = b"{]".to_vec();
        assert!(matches!(decode_one::<serde_json::Value>(&mut bad), Decoded::Invalid(_)));
    }
}
