//! The streaming sinks against receivers.
//!
//! - Syslog: a real rsyslog (Debian's `rsyslog`, installed by `scripts/test.sh`) listening
//!   on TCP and UDP parses our messages as RFC 5424 — its template fields for MSGID and
//!   structured data are only filled when it does.
//! - Elasticsearch/OpenSearch: neither is packaged by Debian nor reachable from here, so the
//!   bulk API is served by an in-test HTTP server that answers as Elasticsearch does
//!   (`errors`, per-item `create` statuses) and can refuse with 429 or stall, which is what
//!   the retry and back-pressure logic needs to be shown against.
//! - JSON Lines to a file.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bulwark_audit::sinks::{
    Elastic, ElasticSettings, JsonLines, Syslog, SyslogSettings, Transport,
};
use bulwark_audit::{BufferSettings, Buffered, Deliver};
use bulwark_events::{Actor, Event, EventSink, Origin};

fn event(i: usize) -> Event {
    Event::new(
        if i.is_multiple_of(2) {
            "login.failure"
        } else {
            "pull"
        },
        Actor {
            kind: "user".into(),
            name: format!("user\"{i}"),
            credential: "password".into(),
        },
        Origin {
            address: Some("192.0.2.7".parse().unwrap()),
            user_agent: Some("skopeo".into()),
        },
    )
    .repository("acme/app")
    .target(format!("v{i}"))
}

fn settings(capacity: usize, batch: usize) -> BufferSettings {
    BufferSettings {
        capacity,
        batch,
        flush_interval: Duration::from_millis(20),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Rsyslog {
    child: Child,
    out: std::path::PathBuf,
    tcp: u16,
    udp: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslog() -> Rsyslog {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_port());
    let out = dir.path().join("out.log");
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="fields" type="string" string="%pri%|%msgid%|%app-name%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
            dir = dir.path().display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("pid"))
        .spawn()
        .expect("rsyslogd (scripts/test.sh installs Debian's rsyslog)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "rsyslogd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Rsyslog {
        child,
        out,
        tcp,
        udp,
        _dir: dir,
    }
}

fn lines_when(path: &Path, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || started.elapsed() > Duration::from_secs(20) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_parses_our_rfc_5424_messages_over_tcp_and_udp() {
    let server = rsyslog();
    for (transport, port, range) in [
        (Transport::Tcp, server.tcp, 0..3),
        (Transport::Udp, server.udp, 3..5),
    ] {
        let sink = Buffered::start(
            "syslog",
            settings(100, 10),
            Syslog::new(SyslogSettings {
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                transport,
                facility: 13,
                hostname: "registry-1".into(),
                app_name: "bulwark".into(),
            }),
        );
        for i in range {
            sink.emit(event(i));
        }
        sink.close().await;
        assert_eq!(sink.dropped(), 0);
    }
    let lines = lines_when(&server.out, 5);
    assert_eq!(lines.len(), 5, "{lines:?}");
    // The two inputs interleave in the file: each line says which event it is.
    let mut seen = Vec::new();
    for line in &lines {
        let fields: Vec<&str> = line.splitn(5, '|').collect();
        let json: serde_json::Value = serde_json::from_str(fields[4].trim()).expect(line);
        let i: usize = json["target"].as_str().unwrap()[1..].parse().unwrap();
        seen.push(i);
        let failure = i.is_multiple_of(2);
        assert_eq!(fields[0], if failure { "108" } else { "109" }, "{line}");
        assert_eq!(
            fields[1],
            if failure { "login.failure" } else { "pull" },
            "{line}"
        );
        assert_eq!(fields[2], "bulwark");
        assert!(
            fields[3].starts_with("[bulwark@32473 kind=")
                && fields[3].contains(&format!(r#"actor="user\"{i}""#))
                && fields[3].contains(r#"repository="acme/app""#),
            "{line}"
        );
        assert_eq!(json["actor"]["name"], format!("user\"{i}"));
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
}

/// What the in-test bulk endpoint does with each request, in order; then it accepts.
#[derive(Clone, Copy)]
enum Answer {
    TooMany,
    /// 200 with `errors: true`: the first item refused with 429, the second with 400
    /// (refused for good), the rest created.
    Partial,
    Stall(Duration),
}

#[derive(Default)]
struct Bulk {
    script: Mutex<Vec<Answer>>,
    requests: Mutex<usize>,
    indexed: Mutex<Vec<serde_json::Value>>,
    ids: Mutex<HashSet<String>>,
}

async fn bulk(State(state): State<Arc<Bulk>>, body: String) -> axum::response::Response {
    *state.requests.lock().unwrap() += 1;
    let answer = {
        let mut script = state.script.lock().unwrap();
        (!script.is_empty()).then(|| script.remove(0))
    };
    if let Some(Answer::TooMany) = answer {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    if let Some(Answer::Stall(d)) = answer {
        tokio::time::sleep(d).await;
    }
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut items = Vec::new();
    for (n, pair) in lines.chunks(2).enumerate() {
        let id = pair[0]["create"]["_id"].as_str().unwrap().to_owned();
        assert_eq!(pair[0]["create"]["_index"], "audit");
        let status = match (answer, n) {
            (Some(Answer::Partial), 0) => 429,
            (Some(Answer::Partial), 1) => 400,
            _ if !state.ids.lock().unwrap().insert(id) => 409,
            _ => {
                state.indexed.lock().unwrap().push(pair[1].clone());
                201
            }
        };
        items.push(serde_json::json!({"create": {"status": status}}));
    }
    let errors = items.iter().any(|i| i["create"]["status"] != 201);
    axum::Json(serde_json::json!({"errors": errors, "items": items})).into_response()
}

async fn bulk_server(script: Vec<Answer>) -> (String, Arc<Bulk>) {
    let state = Arc::new(Bulk {
        script: Mutex::new(script),
        ..Bulk::default()
    });
    let app = axum::Router::new()
        .route("/_bulk", axum::routing::post(bulk))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn elastic(url: &str, max_retries: u32) -> Elastic {
    Elastic::new(ElasticSettings {
        url: url.into(),
        index: "audit".into(),
        username: String::new(),
        password: String::new(),
        max_retries,
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn elastic_retries_refused_requests_and_items_and_counts_what_it_gives_up() {
    let (url, server) = bulk_server(vec![Answer::TooMany, Answer::TooMany, Answer::Partial]).await;
    let mut sink = elastic(&url, 5);
    let batch: Vec<Event> = (0..6).map(event).collect();
    // 429, 429, then a partial answer: item 0 retried and indexed, item 1 refused for good.
    assert_eq!(sink.deliver(batch, false).await, 1);
    assert_eq!(*server.requests.lock().unwrap(), 4);
    let indexed = server.indexed.lock().unwrap().clone();
    let targets: HashSet<String> = indexed
        .iter()
        .map(|d| d["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(indexed.len(), 5, "each once");
    assert_eq!(
        targets,
        ["v0", "v2", "v3", "v4", "v5"].map(String::from).into()
    );
    assert!(indexed[0]["@timestamp"].as_str().unwrap().ends_with('Z'));

    // A cluster that keeps refusing: given up after max_retries, all counted.
    let (url, _server) = bulk_server(vec![Answer::TooMany; 10]).await;
    assert_eq!(
        elastic(&url, 2)
            .deliver((0..4).map(event).collect(), false)
            .await,
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_cluster_never_blocks_emitters_and_every_event_is_delivered_or_counted() {
    let (url, server) = bulk_server(vec![Answer::Stall(Duration::from_millis(500)); 3]).await;
    let sink = Buffered::start("elasticsearch", settings(50, 10), elastic(&url, 3));
    let started = Instant::now();
    for i in 0..2000 {
        sink.emit(event(i));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "emit waited"
    );
    sink.close().await;
    let delivered = server.indexed.lock().unwrap().len() as u64;
    assert!(
        sink.dropped() > 0 && delivered > 0,
        "{delivered} {}",
        sink.dropped()
    );
    assert_eq!(delivered + sink.dropped(), 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_append_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
    let sink = Buffered::start(
        "file",
        settings(100, 10),
        JsonLines::file(&path).await.unwrap(),
    );
    for i in 0..25 {
        sink.emit(event(i));
    }
    sink.close().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 26);
    assert_eq!(lines[25]["target"], "v24");
    assert_eq!(lines[25]["actor"]["name"], "user\"24");
}
