//! The command-id journal: what makes "exactly one execution per command id" hold
//! across re-sends and reconnects.
//!
//! The orchestrator re-sends a command whose result it did not see (typically
//! after a reconnect). The journal remembers, per id:
//!
//! - **in flight**: the command is executing; a duplicate is not executed
//!   again, it is answered when the one execution finishes;
//! - **recorded**: the command finished; a duplicate gets the recorded result
//!   again. The last [`Journal::capacity`] results are kept (oldest evicted
//!   first); an id older than that would run again.
//!
//! Separately it **holds** results that finished while the worker had no
//! registered connection, to send after re-registering. That queue is bounded:
//! when full, the oldest held result is dropped (and logged). It stays
//! recorded, so if the orchestrator re-sends its id it still gets it.
//!
//! In memory only: it lives as long as the [`Session`](crate::Session), so
//! after a worker restart a re-sent id of a command that ran before the restart
//! is executed again.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;

use crate::protocol::CommandResult;

/// What the journal knows about a command id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lookup<'a> {
    /// Never seen (or long forgotten): execute it.
    New,
    /// Executing now: do not execute again; its result will be sent when done.
    InFlight,
    /// Finished: send this result again.
    Recorded(&'a CommandResult),
}

/// In-flight ids, recorded results and held results; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Journal {
    capacity: usize,
    held_max: usize,
    in_flight: BTreeSet<String>,
    recorded: BTreeMap<String, CommandResult>,
    /// Ids of `recorded` in insertion order, for eviction.
    order: VecDeque<String>,
    held: VecDeque<CommandResult>,
}

impl Journal {
    /// A journal recording up to `capacity` results and holding up to `held_max`.
    pub fn new(capacity: usize, held_max: usize) -> Self {
        Journal {
            capacity,
            held_max,
            in_flight: BTreeSet::new(),
            recorded: BTreeMap::new(),
            order: VecDeque::new(),
            held: VecDeque::new(),
        }
    }

    /// How many results are recorded at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// What is known about `id`.
    pub fn lookup(&self, id: &str) -> Lookup<'_> {
        if self.in_flight.contains(id) {
            Lookup::InFlight
        } else if let Some(result) = self.recorded.get(id) {
            Lookup::Recorded(result)
        } else {
            Lookup::New
        }
    }

    /// Whether `id` is executing or recorded.
    pub fn knows(&self, id: &str) -> bool {
        !matches!(self.lookup(id), Lookup::New)
    }

    /// Marks `id` as executing.
    pub fn begin(&mut self, id: String) {
        self.in_flight.insert(id);
    }

    /// Number of commands executing.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Records the result of an executing command. Returns `false` (and records
    /// nothing) when its id was not in flight: a second result for one execution
    /// must never reach the wire.
    pub fn finish(&mut self, result: &CommandResult) -> bool {
        if !self.in_flight.remove(&result.id) {
            return false;
        }
        if self.capacity == 0 {
            return true;
        }
        while self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.recorded.remove(&oldest);
            }
        }
        self.order.push_back(result.id.clone());
        self.recorded.insert(result.id.clone(), result.clone());
        true
    }

    /// Queues a result to send after re-registering. When the queue is full the
    /// oldest held result is dropped and returned (it stays recorded).
    pub fn hold(&mut self, result: CommandResult) -> Option<CommandResult> {
        self.held.retain(|r| r.id != result.id);
        if self.held_max == 0 {
            return Some(result);
        }
        let dropped = if self.held.len() >= self.held_max { self.held.pop_front() } else { None };
        self.held.push_back(result);
        dropped
    }

    /// Puts results back at the front of the held queue, in order (they were
    /// queued for a connection that died before they were sent). Returns those
    /// dropped to respect the bound, oldest first.
    pub fn hold_front(&mut self, results: impl DoubleEndedIterator<Item = CommandResult>) -> VecDeque<CommandResult> {
        for result in results.rev() {
            self.held.retain(|r| r.id != result.id);
            self.held.push_front(result);
        }
        let mut dropped = VecDeque::new();
        while self.held.len() > self.held_max {
            if let Some(r) = self.held.pop_front() {
                dropped.push_back(r);
            }
        }
        dropped
    }

    /// Removes `id` from the held queue (it is being sent another way).
    pub fn unhold(&mut self, id: &str) {
        self.held.retain(|r| r.id != id);
    }

    /// Takes every held result, oldest first.
    pub fn take_held(&mut self) -> VecDeque<CommandResult> {
        core::mem::take(&mut self.held)
    }

    /// Number of held results.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Number of recorded results.
    pub fn recorded(&self) -> usize {
        self.recorded.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use serde_json::json;

    fn ok(id: &str) -> CommandResult {
        CommandResult::from_outcome(id.into(), Ok(json!({ "for": id })))
    }

    #[test]
    fn lifecycle_new_in_flight_recorded() {
        let mut j = Journal::new(4, 4);
        assert_eq!(j.lookup("a"), Lookup::New);
        j.begin("a".into());
        assert_eq!(j.lookup("a"), Lookup::InFlight);
        assert_eq!(j.in_flight(), 1);
        assert!(j.finish(&ok("a")));
        assert_eq!(j.lookup("a"), Lookup::Recorded(&ok("a")));
        assert_eq!(j.in_flight(), 0);
        // A second result for the same execution is refused.
        assert!(!j.finish(&ok("a")));
        assert!(!j.finish(&ok("never-started")));
        assert_eq!(j.lookup("never-started"), Lookup::New);
    }

    #[test]
    fn recorded_results_are_bounded_fifo() {
        let mut j = Journal::new(3, 0);
        for i in 0..5 {
            let id = format!("c{i}");
            j.begin(id.clone());
            j.finish(&ok(&id));
        }
        assert_eq!(j.recorded(), 3);
        assert_eq!(j.lookup("c0"), Lookup::New);
        assert_eq!(j.lookup("c1"), Lookup::New);
        assert!(j.knows("c2") && j.knows("c4"));
        let mut none = Journal::new(0, 0);
        none.begin("x".into());
        assert!(none.finish(&ok("x")));
        assert_eq!(none.lookup("x"), Lookup::New);
    }

    #[test]
    fn held_queue_drops_oldest_when_full() {
        let mut j = Journal::new(8, 2);
        assert_eq!(j.hold(ok("a")), None);
        assert_eq!(j.hold(ok("b")), None);
        assert_eq!(j.hold(ok("c")), Some(ok("a")));
        // Holding an id again replaces it instead of duplicating.
        assert_eq!(j.hold(ok("c")), None);
        assert_eq!(j.held(), 2);
        let dropped = j.hold_front([ok("x"), ok("y")].into_iter());
        // Re-queued results go to the front: they are the oldest, so they go first.
        assert_eq!(dropped, [ok("x"), ok("y")]);
        assert_eq!(j.take_held(), [ok("b"), ok("c")]);
        assert_eq!(j.held(), 0);
        j.hold(ok("z"));
        j.unhold("z");
        assert_eq!(j.held(), 0);
    }
}
