//! [`PolicedEngine`]: any engine behind the security floor.

use futures_util::future::Either;
use futures_util::stream::{Once, once};

use core::task::{Context, Poll};

use super::{Policy, SecurityFloor};
use crate::protocol::{Channel, Command};
use crate::stream::StreamId;
use crate::traits::{Engine, Step, StreamRead, StreamWrite};

/// An [`Engine`] that runs only what its [`Policy`] accepts.
///
/// A refused command never reaches the inner engine: it ends at once with
/// `forbidden` naming the control. An accepted one reaches it with the floor's
/// constraints applied (see [`Policy::enforce`]).
///
/// ```
/// use cropscode_core::dispatch::NoEngine;
/// use cropscode_core::policy::{PolicedEngine, Policy, SecurityFloor};
///
/// let engine = PolicedEngine::new(NoEngine, Policy::new(SecurityFloor::Restricted));
/// assert_eq!(engine.policy().floor(), SecurityFloor::Restricted);
/// ```
#[derive(Debug, Clone)]
pub struct PolicedEngine<E> {
    inner: E,
    policy: Policy,
}

impl<E> PolicedEngine<E> {
    /// `inner` behind `policy`; tells `inner` the floor ([`Engine::set_floor`]).
    pub fn new(mut inner: E, policy: Policy) -> Self
    where
        E: Engine,
    {
        inner.set_floor(policy.floor());
        PolicedEngine { inner, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The engine behind the policy.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Engine> PolicedEngine<E> {
    /// The command as the inner engine must run it, or the finished refusal.
    fn judge(&self, command: Command) -> Result<Command, Step> {
        let name = command.name();
        self.policy.enforce(command).map_err(|refusal| {
            tracing::warn!(
                command = name,
                floor = refusal.floor.as_str(),
                control = refusal.control.as_str(),
                reason = %refusal.message,
                "security floor refused a command"
            );
            Step::Done(Err(refusal.to_wire()))
        })
    }
}

impl<E: Engine> Engine for PolicedEngine<E> {
    type Execution<'a>
        = Either<Once<core::future::Ready<Step>>, E::Execution<'a>>
    where
        Self: 'a;

    fn execute(&self, command: Command) -> Self::Execution<'_> {
        match self.judge(command) {
            Ok(command) => Either::Right(self.inner.execute(command)),
            Err(refusal) => Either::Left(once(core::future::ready(refusal))),
        }
    }

    /// `terminal.open` is judged like any exec path before the stream opens.
    fn open_stream(&self, stream: StreamId, command: Command) -> Self::Execution<'_> {
        match self.judge(command) {
            Ok(command) => Either::Right(self.inner.open_stream(stream, command)),
            Err(refusal) => Either::Left(once(core::future::ready(refusal))),
        }
    }

    fn poll_stream_read(&self, channel: Channel, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<StreamRead> {
        self.inner.poll_stream_read(channel, cx, buf)
    }

    fn poll_stream_write(&self, channel: Channel, cx: &mut Context<'_>, data: &[u8]) -> Poll<StreamWrite> {
        self.inner.poll_stream_write(channel, cx, data)
    }

    fn close_stream(&self, channel: Channel) {
        self.inner.close_stream(channel)
    }

    fn set_floor(&mut self, floor: SecurityFloor) {
        self.inner.set_floor(floor)
    }

    fn registered(&self, worker_id: &str) {
        self.inner.registered(worker_id)
    }

    fn containers_running(&self) -> Option<u32> {
        self.inner.containers_running()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SecurityFloor;
    use crate::protocol::ErrorCode;
    use crate::traits::Engine;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use futures_lite::StreamExt;
    use futures_lite::future::block_on;
    use serde_json::{Value, json};

    /// Records what reaches it and answers `ok`.
    #[derive(Default)]
    struct Recorder(RefCell<Vec<Command>>);

    impl Engine for Recorder {
        type Execution<'a> = futures_lite::stream::Once<Step>;

        fn execute(&self, command: Command) -> Self::Execution<'_> {
            self.0.borrow_mut().push(command);
            futures_lite::stream::once(Step::Done(Ok(Value::Null)))
        }
    }

    fn run(engine: &PolicedEngine<Recorder>, name: &str, params: Value) -> Vec<Step> {
        block_on(engine.execute(Command::decode(name, params).expect("valid")).collect())
    }

    /// Remembers the floor it was given.
    struct FloorAware(Option<SecurityFloor>);

    impl Engine for FloorAware {
        type Execution<'a> = futures_lite::stream::Once<Step>;

        fn execute(&self, _: Command) -> Self::Execution<'_> {
            futures_lite::stream::once(Step::Done(Ok(Value::Null)))
        }

        fn set_floor(&mut self, floor: SecurityFloor) {
            self.0 = Some(floor);
        }
    }

    #[test]
    fn the_inner_engine_is_told_the_floor_once_at_construction() {
        let engine = PolicedEngine::new(FloorAware(None), Policy::new(SecurityFloor::Restricted));
        assert_eq!(engine.inner().0, Some(SecurityFloor::Restricted));
    }

    #[test]
    fn refusals_never_reach_the_engine() {
        let engine = PolicedEngine::new(Recorder::default(), Policy::new(SecurityFloor::Baseline));
        let steps = run(&engine, "container.create", json!({"image": "busybox", "tenant": "t", "privileged": true}));
        let [Step::Done(Err(error))] = &steps[..] else { panic!("{steps:?}") };
        assert_eq!(error.code, ErrorCode::Forbidden);
        assert!(error.message.contains("`privileged`"), "{}", error.message);
        assert!(engine.inner().0.borrow().is_empty());
    }

    #[test]
    fn accepted_commands_reach_the_engine_with_the_constraints_applied() {
        let engine = PolicedEngine::new(Recorder::default(), Policy::new(SecurityFloor::Restricted));
        let steps = run(&engine, "container.create", json!({"image": "busybox", "tenant": "t", "user": "1000"}));
        assert_eq!(steps, [Step::Done(Ok(Value::Null))]);
        let seen = engine.inner().0.borrow();
        let [Command::ContainerCreate(create)] = &seen[..] else { panic!("{seen:?}") };
        assert_eq!(create.cap_drop, ["ALL"]);
        assert_eq!(create.security_opt, ["no-new-privileges"]);
        assert!(create.resources.as_ref().is_some_and(|r| r.pids_limit.is_some() && r.memory_bytes.is_some()));
    }

    #[test]
    fn other_commands_pass_unchanged() {
        let engine = PolicedEngine::new(Recorder::default(), Policy::new(SecurityFloor::Restricted));
        let params = json!({"containerId": "c1", "command": ["ls"], "user": "1000"});
        run(&engine, "container.exec", params.clone());
        assert_eq!(engine.inner().0.borrow()[0], Command::decode("container.exec", params).unwrap());
    }

    #[test]
    fn terminals_are_judged_before_their_stream_opens() {
        let engine = PolicedEngine::new(Recorder::default(), Policy::new(SecurityFloor::Restricted));
        let stream = StreamId {
            channel: Channel::new(1),
            session_id: "t-0-1".into(),
            kind: crate::stream::StreamType::Terminal,
        };
        let open = |user: &str| Command::decode("terminal.open", json!({"containerId": "c1", "user": user})).unwrap();
        let steps: Vec<Step> = block_on(engine.open_stream(stream.clone(), open("root")).collect());
        let [Step::Done(Err(error))] = &steps[..] else { panic!("{steps:?}") };
        assert_eq!(error.code, ErrorCode::Forbidden);
        assert!(engine.inner().0.borrow().is_empty());
        let steps: Vec<Step> = block_on(engine.open_stream(stream, open("1000")).collect());
        assert_eq!(steps, [Step::Done(Ok(Value::Null))]);
        assert_eq!(engine.inner().0.borrow().len(), 1);
    }
}
