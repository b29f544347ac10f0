use std::cell::Cell;
use std::io;
use std::rc::Rc;

use super::probe::{connect_failure, connected, http_status, status_code, tls_failure};
use super::*;

const MS: Duration = Duration::from_millis(1);

fn reading(status: GatewayStatus, detail: &str) -> GatewayReading {
    GatewayReading { status, detail: detail.into() }
}

#[test]
fn urls_take_three_schemes_and_show_no_credentials_or_query() {
    let url = GatewayUrl::parse("https://robot:s3cret@gw.example:8443/v2/health?token=abc#frag").unwrap();
    assert_eq!((url.scheme(), url.host(), url.port()), (GatewayScheme::Https, "gw.example", 8443));
    assert_eq!(url.target, "/v2/health?token=abc", "the request asks for what the owner named");
    for shown in [url.to_string(), format!("{url:?}")] {
        assert!(shown.contains("gw.example:8443/v2/health"), "{shown}");
        for secret in ["robot", "s3cret", "token", "abc", "@"] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
    }
    assert_eq!(url.host_header(), "gw.example:8443");

    let url = GatewayUrl::parse("http://gw.example").unwrap();
    assert_eq!((url.port(), url.target.as_str(), url.to_string().as_str()), (80, "/", "http://gw.example/"));
    assert_eq!(url.host_header(), "gw.example");
    let url = GatewayUrl::parse("tcp://[::1]:5432").unwrap();
    assert_eq!((url.scheme(), url.host(), url.port()), (GatewayScheme::Tcp, "::1", 5432));
    assert_eq!(url.to_string(), "tcp://[::1]:5432");
    assert_eq!(GatewayUrl::parse("HTTPS://gw.example/").unwrap().scheme(), GatewayScheme::Https);
}

#[test]
fn unusable_urls_are_refused_without_repeating_them() {
    for (text, says) in [
        ("ftp://user:pw@gw.example/", "unsupported scheme `ftp`"),
        ("gw.example:80", "scheme"),
        ("tcp://gw.example", "needs a port"),
        ("tcp://gw.example:53/path", "no path"),
        ("http:///health", "not a valid URL"),
        ("not a url at all", "not a valid URL"),
    ] {
        let error = GatewayUrl::parse(text).unwrap_err();
        assert!(error.contains(says), "{text}: {error}");
        assert!(!error.contains("pw") && !error.contains("gw.example"), "{text}: {error}");
    }
    let long = format!("http://gw.example/{}", "a".repeat(MAX_GATEWAY_URL_BYTES));
    assert!(GatewayUrl::parse(&long).unwrap_err().contains("longer than"));
}

#[test]
fn http_answers_are_classified_by_status_and_time() {
    let slow = SLOW_AFTER;
    assert_eq!(http_status(200, 12 * MS, slow), reading(GatewayStatus::Ok, "HTTP 200 in 12 ms"));
    assert_eq!(http_status(302, 3 * MS, slow), reading(GatewayStatus::Ok, "HTTP 302 in 3 ms"));
    assert_eq!(http_status(200, 1520 * MS, slow), reading(GatewayStatus::Degraded, "HTTP 200 in 1520 ms (slow)"));
    assert_eq!(http_status(503, 4 * MS, slow), reading(GatewayStatus::Degraded, "HTTP 503 in 4 ms"));
    assert_eq!(http_status(404, 4 * MS, slow).status, GatewayStatus::Degraded);
    for code in [401, 403, 407] {
        assert_eq!(http_status(code, 3 * MS, slow).status, GatewayStatus::AuthFailed, "{code}");
    }
    // A slow refusal is still a refusal.
    assert_eq!(http_status(401, 1520 * MS, slow), reading(GatewayStatus::AuthFailed, "HTTP 401 in 1520 ms"));
    assert_eq!(connected(3 * MS, slow), reading(GatewayStatus::Ok, "connected in 3 ms"));
    assert_eq!(connected(1200 * MS, slow).status, GatewayStatus::Degraded);
}

#[test]
fn status_lines_are_read_strictly() {
    assert_eq!(status_code(b"HTTP/1.1 200 OK\r"), Some(200));
    assert_eq!(status_code(b"HTTP/1.0 503"), Some(503));
    assert_eq!(status_code(b"SSH-2.0-OpenSSH_9.2"), None);
    assert_eq!(status_code(b"HTTP/1.1 20 OK"), None);
    assert_eq!(status_code(b"\x16\x03\x01\x02"), None);
}

#[test]
fn failures_are_classified_without_echoing_names() {
    let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    assert_eq!(connect_failure(&refused), reading(GatewayStatus::Unreachable, "connect refused"));
    let tls = |e: rustls::Error| tls_failure(&io::Error::new(io::ErrorKind::InvalidData, e));
    use rustls::CertificateError as C;
    assert_eq!(tls(rustls::Error::InvalidCertificate(C::UnknownIssuer)).detail, "TLS: certificate not trusted");
    assert_eq!(tls(rustls::Error::InvalidCertificate(C::Expired)).detail, "TLS: certificate expired");
    let misnamed = C::NotValidForNameContext {
        expected: rustls_pki_types::ServerName::try_from("secret-host.example").unwrap().to_owned(),
        presented: vec!["other.example".into()],
    };
    let misnamed = tls(rustls::Error::InvalidCertificate(misnamed));
    assert_eq!(misnamed, reading(GatewayStatus::TlsFailed, "TLS: certificate not valid for the host"));
    assert_eq!(GatewayReading::timed_out(Duration::from_secs(5)).detail, "timed out after 5 s");
    assert_eq!(GatewayReading::timed_out(300 * MS).detail, "timed out after 300 ms");
}

#[test]
fn details_are_bounded() {
    let long = GatewayReading::new(GatewayStatus::Degraded, "é".repeat(200));
    assert!(long.detail.len() <= MAX_DETAIL_BYTES && long.detail.ends_with('…'), "{}", long.detail.len());
}

fn monitor(owner: Option<&str>) -> (GatewayHandle, Receiver<()>) {
    let tls = crate::tls::client_config(None).unwrap();
    let owner = owner.map(|u| GatewayUrl::parse(u).unwrap());
    let (monitor, handle) = GatewayMonitor::new(owner, Duration::from_secs(30), Duration::from_secs(5), tls, "0");
    (handle, monitor.changed)
}

#[test]
fn heartbeats_say_nothing_without_a_gateway_and_unknown_before_the_first_probe() {
    let (handle, _changed) = monitor(None);
    assert_eq!(handle.heartbeat_fields(), (None, None));
    handle.offer(Some(&Gateway { url: "tcp://gw.example:53".into() }));
    assert_eq!(handle.heartbeat_fields(), (Some("unknown".into()), Some("not probed yet".into())));
    let (generation, _) = handle.current().unwrap();
    handle.store(generation, reading(GatewayStatus::Ok, "connected in 1 ms"));
    assert_eq!(handle.heartbeat_fields(), (Some("ok".into()), Some("connected in 1 ms".into())));
    // A registration without a gateway withdraws it.
    handle.offer(None);
    assert_eq!(handle.heartbeat_fields(), (None, None));
    // A reading of a target that has since changed is dropped.
    handle.offer(Some(&Gateway { url: "tcp://gw.example:54".into() }));
    handle.store(generation, reading(GatewayStatus::Ok, "stale"));
    assert_eq!(handle.reading(), None);
    // An unusable URL from the orchestrator is ignored.
    handle.offer(Some(&Gateway { url: "ftp://gw.example/".into() }));
    assert_eq!(handle.target(), None);
}

#[test]
fn the_owners_gateway_wins_over_the_orchestrators() {
    let (handle, changed) = monitor(Some("http://owner.example/health"));
    let (generation, _) = handle.current().unwrap();
    handle.store(generation, reading(GatewayStatus::Ok, "HTTP 200 in 1 ms"));
    handle.offer(Some(&Gateway { url: "http://orchestrator.example/".into() }));
    assert_eq!(handle.target().unwrap().host(), "owner.example");
    assert_eq!(handle.reading().map(|r| r.status), Some(GatewayStatus::Ok), "the owner's reading stays");
    assert!(changed.try_recv().is_err(), "nothing to re-probe");
}

/// Counts probes started and in flight; each one stalls until cut off.
#[derive(Default)]
struct Stalls {
    started: Cell<u32>,
    in_flight: Cell<u32>,
    most_in_flight: Cell<u32>,
}

struct InFlight(Rc<Stalls>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

#[test]
fn a_stalled_probe_is_cut_off_and_never_overlaps_the_next() {
    let (handle, changed) = monitor(None);
    handle.offer(Some(&Gateway { url: "tcp://gw.example:53".into() }));
    let stalls = Rc::new(Stalls::default());
    let probe = |_url: GatewayUrl| {
        let stalls = stalls.clone();
        async move {
            stalls.started.set(stalls.started.get() + 1);
            stalls.in_flight.set(stalls.in_flight.get() + 1);
            stalls.most_in_flight.set(stalls.most_in_flight.get().max(stalls.in_flight.get()));
            let _guard = InFlight(stalls);
            future::pending::<GatewayReading>().await
        }
    };
    // New targets while a probe is in flight wake the loop, but never start a second probe.
    let offers = async {
        for port in 0..16 {
            sleep(25 * MS).await;
            handle.offer(Some(&Gateway { url: format!("tcp://gw.example:{}", 53 + port % 2) }));
        }
        future::pending::<()>().await
    };
    let run = run_loop(&handle, &changed, 50 * MS, 200 * MS, probe);
    smol::block_on(future::or(future::or(run, offers), sleep(1200 * MS)));
    assert_eq!(stalls.most_in_flight.get(), 1, "never two probes at once");
    // Each probe takes its whole 200 ms: six at most in 1200 ms, however often the target changes.
    let started = stalls.started.get();
    assert!((4..=6).contains(&started), "{started} probes started");
    assert_eq!(handle.reading(), Some(GatewayReading::timed_out(200 * MS)));
    assert_eq!(handle.heartbeat_fields().0.as_deref(), Some("unreachable"));
}

#[test]
fn a_new_target_is_probed_at_once() {
    let (handle, changed) = monitor(None);
    let probe = |url: GatewayUrl| async move { reading(GatewayStatus::Ok, &format!("port {}", url.port())) };
    let offer = async {
        sleep(20 * MS).await;
        handle.offer(Some(&Gateway { url: "tcp://gw.example:7".into() }));
        // Well before the 30 s interval would have passed.
        sleep(100 * MS).await;
    };
    smol::block_on(future::or(offer, run_loop(&handle, &changed, Duration::from_secs(30), 200 * MS, probe)));
    assert_eq!(handle.reading(), Some(reading(GatewayStatus::Ok, "port 7")));
}
