//! The upgrade needs `Authorization: Bearer <accepted token>`; everything else gets 401,
//! and a token in the URL is flagged.

mod common;

use async_net::TcpStream;
use common::*;
use cropscode_orchestrator::{Behavior, Event, Orchestrator, OrchestratorConfig};

fn upgrades(orchestrator: &Orchestrator) -> Vec<(bool, bool)> {
    orchestrator
        .events()
        .into_iter()
        .filter_map(|t| match t.event {
            Event::Upgrade { authorized, token_in_url } => Some((authorized, token_in_url)),
            _ => None,
        })
        .collect()
}

#[test]
fn missing_or_wrong_tokens_get_401() {
    smol::block_on(async {
        let orchestrator = start().await;
        let addr = orchestrator.ws_addr();

        let refused = connect(addr, None).await.expect_err("no token");
        assert_eq!(refusal_status(&refused), Some(401));
        let refused = connect(addr, Some("not-the-token")).await.expect_err("wrong token");
        assert_eq!(refusal_status(&refused), Some(401));
        let in_url =
            upgrade(format!("ws://{addr}/worker?token={TOKEN}"), None, TcpStream::connect(addr).await.unwrap())
                .await
                .expect_err("token in the URL only");
        assert_eq!(refusal_status(&in_url), Some(401));
        let _accepted = connect(addr, Some(TOKEN)).await.expect("right token");

        assert_eq!(upgrades(&orchestrator), vec![(false, false), (false, false), (false, true), (true, false)]);
        orchestrator.stop().await;
    });
}

#[test]
fn reject_all_refuses_even_the_right_token() {
    smol::block_on(async {
        let orchestrator = start().await;
        orchestrator.set_behavior(Behavior::RejectAll);
        let refused = connect(orchestrator.ws_addr(), Some(TOKEN)).await.expect_err("rejected");
        assert_eq!(refusal_status(&refused), Some(401));
        orchestrator.set_behavior(Behavior::Normal);
        connect(orchestrator.ws_addr(), Some(TOKEN)).await.expect("accepted again");
        assert_eq!(upgrades(&orchestrator), vec![(false, false), (true, false)]);
        orchestrator.stop().await;
    });
}

#[test]
fn an_empty_token_list_accepts_nobody() {
    smol::block_on(async {
        let orchestrator = Orchestrator::start(OrchestratorConfig::default()).await.expect("start");
        let refused = connect(orchestrator.ws_addr(), Some("")).await.expect_err("nobody");
        assert_eq!(refusal_status(&refused), Some(401));
        orchestrator.stop().await;
    });
}

#[test]
fn refuses_to_bind_non_loopback_addresses() {
    smol::block_on(async {
        let config =
            OrchestratorConfig { ws_addr: "0.0.0.0:0".parse().unwrap(), ..OrchestratorConfig::with_token(TOKEN) };
        let error = Orchestrator::start(config).await.err().expect("0.0.0.0 refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        let config = OrchestratorConfig {
            http_addr: Some("0.0.0.0:0".parse().unwrap()),
            ..OrchestratorConfig::with_token(TOKEN)
        };
        let error = Orchestrator::start(config).await.err().expect("HTTP on 0.0.0.0 refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    });
}
