//! Background output that outlives the worker: a relay in the container.
//!
//! An engine hands an exec's output to one attached connection only, and
//! never again: what a command writes while the worker is away (restarting,
//! upgraded, crashed) would be gone. So when the container has a POSIX `sh`
//! and a writable `/tmp`, a background command runs with its stdout and
//! stderr on two FIFOs in `/tmp/.cropscode-<execId>/`, each drained by a
//! small `sh` + `dd` relay into numbered segment files there:
//!
//! ```text
//! command ──stdout──► o.p ──relay──► o.<offset> … (segments of ≤ 2 MiB, newest 3 full ones kept)
//!         ──stderr──► e.p ──relay──► e.<offset> …
//!                                    o.end / e.end once the stream closed
//!                                    o.pid / e.pid the relays' process ids
//! ```
//!
//! The wrapper (a `sh` without the `CROPSCODE_EXEC` marker) starts the two
//! relays and the command as its children, waits for all three and exits with
//! the command's status (128 + n when a signal ended it, as an engine reports
//! it). Only the command carries the marker, so `kill` ends it and its
//! children but not the relays, which end when the last writer closed; and
//! the wrapper reaps the relays, so none is left as a zombie in a container
//! whose PID 1 does not reap.
//!
//! The worker reads the segments through a *reader* exec (another `sh`
//! script) started from the byte offsets its spool already holds in each
//! stream, so after a restart it goes on exactly where it stopped. The
//! reader writes a framed stream on its stdout:
//!
//! ```text
//! D <o|e> <n>\n<n bytes>    output of stdout / stderr
//! L <o|e> <offset>\n        the bytes up to <offset> were dropped in the container
//! E\n                       both streams ended and everything was sent
//! ```
//!
//! A stream has ended when its relay wrote `<s>.end`, or when its relay is
//! gone without writing it (the container restarted: the command and its
//! relays died with it, the files stayed).
//!
//! It polls the files (50 ms, backing off to 1 s while nothing is new), and
//! a container keeps at most 8 MiB of each stream ([`KEEP`]): when the
//! worker is away longer than it takes to write more, the oldest is dropped
//! and reported lost.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use cropscode_engine_api::OutputKind;

/// Bytes per segment file in the container.
pub(crate) const SEGMENT_BYTES: u64 = 2 * 1024 * 1024;
/// Full segment files kept per stream in the container, besides the one being
/// written: a container holds at most (KEEP + 1) × SEGMENT_BYTES (8 MiB) of
/// each stream, and at least KEEP × SEGMENT_BYTES of the newest output.
pub(crate) const KEEP: u64 = 3;
/// Most bytes in one `D` frame of the reader.
pub(crate) const FRAME_BYTES: u64 = 1024 * 1024;
/// Longest control line the reader writes.
const LINE_MAX: usize = 64;

/// The directory of a background exec's relay in its container.
pub(crate) fn dir(exec_id: &str) -> String {
    format!("/tmp/.cropscode-{exec_id}")
}

/// Creates the relay's directory and FIFOs: `sh -c PREPARE sh DIR`. Fails
/// (non-zero) where the relay cannot work: no `sh`, no writable `/tmp`, no `/proc`,
/// or one of the tools the relay and its reader use missing.
pub(crate) const PREPARE: &str = r#"for t in mkfifo dd wc tail head cat rm sleep tr grep; do command -v "$t" >/dev/null || exit 1; done
[ -r /proc/self/cmdline ] && umask 077 && mkdir "$1" && mkfifo "$1/o.p" "$1/e.p""#;

/// Copies one FIFO (stdin) into segments: `sh -c RELAY sh DIR o|e SEGMENT_BYTES KEEP`.
/// `dd` without `count_bytes` counts reads of at most 4096 bytes, so a segment
/// holds at most SEGMENT_BYTES; each ends at a read boundary and is named by
/// the offset of its first byte.
pub(crate) const RELAY: &str = r#"d=$1 s=$2 n=$(($3 / 4096)) keep=$4 off=0 kept=
echo "$$" >"$d/$s.pid"
while :; do
  f=$d/$s.$off
  dd bs=4096 count="$n" of="$f" 2>/dev/null
  z=$(($(wc -c 2>/dev/null <"$f" || echo 0) + 0))
  if [ "$z" -eq 0 ]; then rm -f "$f"; break; fi
  kept="$kept $off" off=$((off + z))
  set -- $kept
  while [ "$#" -gt "$keep" ]; do rm -f "$d/$s.$1"; shift; done
  kept="$*"
done
: >"$d/$s.end""#;

/// Streams the segments from the given offsets, framed (see the module docs):
/// `sh -c READER sh DIR STDOUT_OFFSET STDERR_OFFSET FRAME_BYTES`.
pub(crate) const READER: &str = r#"d=$1 o=$2 e=$3 max=$4 t=0
pause() {
  case $t in 0) t=0.05 ;; 0.05) t=0.1 ;; 0.1) t=0.25 ;; 0.25) t=0.5 ;; *) t=1 ;; esac
  sleep "$t" 2>/dev/null || sleep 1
}
step() {
  s=$1; eval "off=\$$s"; best= low=
  for f in "$d/$s".[0-9]*; do
    [ -e "$f" ] || continue
    b=${f##*.}
    if [ -z "$low" ] || [ "$b" -lt "$low" ]; then low=$b; fi
    if [ "$b" -le "$off" ] && { [ -z "$best" ] || [ "$b" -gt "$best" ]; }; then best=$b; fi
  done
  if [ -z "$best" ]; then
    [ -n "$low" ] || return 0
    printf 'L %s %s\n' "$s" "$low"; off=$low best=$low moved=1
  fi
  f=$d/$s.$best
  z=$(($(wc -c 2>/dev/null <"$f" || echo 0) + 0))
  if [ $((best + z)) -gt "$off" ]; then
    { tail -c +$((off - best + 1)) <&3 | head -c "$max" >"$d/r.tmp"; } 2>/dev/null 3<"$f"
    n=$(($(wc -c 2>/dev/null <"$d/r.tmp" || echo 0) + 0))
    if [ "$n" -gt 0 ]; then
      printf 'D %s %s\n' "$s" "$n"; cat "$d/r.tmp" || exit 1
      off=$((off + n)) moved=1
    fi
  fi
  eval "$s=\$off"
}
# A stream ended when its relay said so, or when its relay is gone without
# saying so (the container restarted and killed it).
over() {
  [ -e "$d/$1.end" ] && return 0
  read -r p 2>/dev/null <"$d/$1.pid" || return 1
  ! tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline" | grep -qxF "$d"
}
while :; do
  ended=
  if over o && over e; then ended=1; fi
  moved=
  step o
  step e
  if [ -n "$moved" ]; then t=0; continue; fi
  if [ -n "$ended" ]; then printf 'E\n'; exit 0; fi
  [ -d "$d" ] || exit 3
  pause
done"#;

/// The wrapper that starts the relays and the command, and waits for them:
/// `sh -c WRAPPER sh RELAY DIR SEGMENT_BYTES KEEP EXEC_ID COMMAND...`.
pub(crate) fn wrapper(marker: &str) -> String {
    format!(
        r#"r=$1 d=$2 seg=$3 keep=$4 id=$5
shift 5
sh -c "$r" sh "$d" o "$seg" "$keep" <"$d/o.p" &
sh -c "$r" sh "$d" e "$seg" "$keep" <"$d/e.p" &
{marker}=$id "$@" >"$d/o.p" 2>"$d/e.p"
rc=$?
wait
exit "$rc""#
    )
}

/// The full argument vector running `command` through the relay; only the
/// command gets `marker=exec_id` in its environment.
pub(crate) fn wrapped(marker: &str, exec_id: &str, dir: &str, command: &[String]) -> Vec<String> {
    let mut cmd = vec![
        "sh".into(),
        "-c".into(),
        wrapper(marker),
        "sh".into(),
        RELAY.into(),
        dir.into(),
        SEGMENT_BYTES.to_string(),
        KEEP.to_string(),
        exec_id.into(),
    ];
    cmd.extend(command.iter().cloned());
    cmd
}

/// The reader's argument vector, from these stream offsets.
pub(crate) fn reader(dir: &str, stdout: u64, stderr: u64) -> Vec<String> {
    ["sh", "-c", READER, "sh", dir]
        .into_iter()
        .map(String::from)
        .chain([stdout.to_string(), stderr.to_string(), FRAME_BYTES.to_string()])
        .collect()
}

/// The most a single `L` frame may skip (1 TiB): the reader runs in the container, so
/// a number it sends is checked before the spool records that many lost bytes.
const MAX_LOST: u64 = 1 << 40;

/// The bytes an `L` frame to `to` skips in a stream the spool holds up to `at`;
/// an error for a skip backwards or beyond [`MAX_LOST`].
pub(crate) fn lost_bytes(at: u64, to: u64) -> Result<u64, String> {
    match to.checked_sub(at) {
        Some(lost) if lost <= MAX_LOST => Ok(lost),
        _ => Err(format!("implausible loss from the relay reader: from {at} to {to}")),
    }
}

/// What the reader said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Output bytes (a `D` frame may come in several pieces).
    Data(OutputKind, Bytes),
    /// The stream's bytes before this offset were dropped in the container.
    Lost(OutputKind, u64),
    /// Everything was sent; both streams ended.
    End,
}

/// Decodes the reader's framed stdout, piece by piece.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    line: BytesMut,
    /// In a `D` frame: its stream and the bytes still to come.
    data: Option<(OutputKind, u64)>,
}

fn stream_of(name: &[u8]) -> Option<OutputKind> {
    match name {
        b"o" => Some(OutputKind::Stdout),
        b"e" => Some(OutputKind::Stderr),
        _ => None,
    }
}

impl Decoder {
    /// Decodes `input` into `out`; an error names what was malformed.
    pub(crate) fn decode(&mut self, mut input: Bytes, out: &mut VecDeque<Frame>) -> Result<(), String> {
        while input.has_remaining() {
            if let Some((kind, left)) = self.data {
                let take = (left as usize).min(input.len());
                out.push_back(Frame::Data(kind, input.split_to(take)));
                self.data = (left > take as u64).then_some((kind, left - take as u64));
                continue;
            }
            let Some(newline) = input.iter().position(|b| *b == b'\n') else {
                self.line.extend_from_slice(&input);
                if self.line.len() > LINE_MAX {
                    return Err("the relay reader wrote an over-long line".into());
                }
                return Ok(());
            };
            self.line.extend_from_slice(&input.split_to(newline));
            input.advance(1);
            let line = std::mem::take(&mut self.line);
            let words: Vec<&[u8]> = line[..].split(|b| *b == b' ').collect();
            let number = |word: &[u8]| std::str::from_utf8(word).ok().and_then(|w| w.parse::<u64>().ok());
            match words.as_slice() {
                [b"E"] => out.push_back(Frame::End),
                [b"D", s, n] => match (stream_of(s), number(n)) {
                    (Some(kind), Some(n)) if n > 0 && n <= FRAME_BYTES => self.data = Some((kind, n)),
                    _ => {
                        return Err(format!(
                            "bad data frame from the relay reader: {}",
                            String::from_utf8_lossy(&line)
                        ));
                    }
                },
                [b"L", s, n] => match (stream_of(s), number(n)) {
                    (Some(kind), Some(n)) => out.push_back(Frame::Lost(kind, n)),
                    _ => {
                        return Err(format!(
                            "bad loss frame from the relay reader: {}",
                            String::from_utf8_lossy(&line)
                        ));
                    }
                },
                _ => return Err(format!("unexpected output of the relay reader: {}", String::from_utf8_lossy(&line))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<Vec<Frame>, String> {
        let mut decoder = Decoder::default();
        let mut out = VecDeque::new();
        for part in input.chunks(piece) {
            decoder.decode(Bytes::copy_from_slice(part), &mut out)?;
        }
        // Join data pieces of one stream for comparison.
        let mut frames: Vec<Frame> = Vec::new();
        for frame in out {
            match (frames.last_mut(), frame) {
                (Some(Frame::Data(last, data)), Frame::Data(kind, more)) if *last == kind => {
                    *data = Bytes::from([data.as_ref(), more.as_ref()].concat());
                }
                (_, frame) => frames.push(frame),
            }
        }
        Ok(frames)
    }

    #[test]
    fn frames_decode_whatever_the_pieces() {
        let input = b"D o 5\nhe\nlo" as &[u8];
        let input = [input, b"L e 4096\nD e 3\nD oE\n"].concat();
        for piece in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_in_pieces(&input, piece).unwrap(),
                vec![
                    Frame::Data(OutputKind::Stdout, Bytes::from_static(b"he\nlo")),
                    Frame::Lost(OutputKind::Stderr, 4096),
                    Frame::Data(OutputKind::Stderr, Bytes::from_static(b"D o")),
                    Frame::End,
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        for bad in [&b"D x 3\nabc"[..], b"D o 0\n", b"D o 99999999999\n", b"hello\n", b"L o -1\n", &[b'D'; 80]] {
            assert!(decode_in_pieces(bad, 4).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn losses_are_checked() {
        assert_eq!(lost_bytes(10, 10), Ok(0));
        assert_eq!(lost_bytes(10, 4096), Ok(4086));
        assert!(lost_bytes(4096, 10).is_err());
        assert!(lost_bytes(0, u64::MAX).is_err());
    }

    #[test]
    fn only_the_command_carries_the_marker() {
        let script = wrapper("CROPSCODE_EXEC");
        assert_eq!(script.matches("CROPSCODE_EXEC").count(), 1, "{script}");
        assert!(script.contains(r#"CROPSCODE_EXEC=$id "$@" >"$d/o.p" 2>"$d/e.p""#), "{script}");
        let argv = wrapped("CROPSCODE_EXEC", "x-1", "/tmp/.cropscode-x-1", &["echo".into(), "hi".into()]);
        assert_eq!(&argv[5..], ["/tmp/.cropscode-x-1", "2097152", "3", "x-1", "echo", "hi"]);
    }
}
