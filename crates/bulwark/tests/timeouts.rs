//! Slow and stalled clients. A connection must send a request head within the head timeout,
//! counted from when it opens or its previous response ends; a request body may not go
//! silent for longer than the body idle timeout, nor a response wait longer than the send
//! timeout for the client to read. All three are one second here.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn registry() -> Registry {
    Registry::start_with_env(&[
        ("BULWARK_LIMITS__HEAD_TIMEOUT_SECS", "1"),
        ("BULWARK_LIMITS__BODY_IDLE_TIMEOUT_SECS", "1"),
        ("BULWARK_LIMITS__SEND_TIMEOUT_SECS", "1"),
    ])
}

/// Reads until the server closes the connection (10 s at most): what it sent, and how long
/// after `since` it closed.
async fn until_closed(conn: &mut TcpStream, since: Instant) -> (Vec<u8>, Duration) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the server closes the connection");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, since.elapsed())
}

/// Reads one response head (up to its blank line).
async fn response_head(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte))
            .await
            .expect("a response in time")
            .expect("read");
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn assert_closed_after_the_timeout(what: &str, after: Duration) {
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "{what}: closed after {after:?}"
    );
}

#[tokio::test]
async fn connections_without_a_timely_request_head_are_closed() {
    let r = registry();
    for (what, sent) in [
        ("silent", &b""[..]),
        ("head cut short", b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n"),
        ("part of the HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
    ] {
        let mut conn = TcpStream::connect(r.host()).await.unwrap();
        let opened = Instant::now();
        conn.write_all(sent).await.unwrap();
        let (answer, after) = until_closed(&mut conn, opened).await;
        assert_closed_after_the_timeout(what, after);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            !answer.contains(" 200 ") && !answer.contains(" 401 "),
            "{what}: {answer}"
        );
    }

    // Between requests: a keep-alive connection idle after its response.
    let mut conn = TcpStream::connect(r.host()).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: registry\r\n\r\n")
        .await
        .unwrap();
    let head = response_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let answered = Instant::now();
    let (_, after) = until_closed(&mut conn, answered).await;
    assert_closed_after_the_timeout("idle keep-alive", after);

    // HTTP/2 (prior knowledge): a peer that sends its preface and settings, then answers
    // nothing, not even the server's pings, is closed.
    let mut conn = TcpStream::connect(r.host()).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let opened = Instant::now();
    let (_, after) = until_closed(&mut conn, opened).await;
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(8),
        "an unanswering HTTP/2 peer closed after {after:?}"
    );

    // A head sent in pieces, all within the timeout, is served.
    let mut conn = TcpStream::connect(r.host()).await.unwrap();
    for piece in [
        &b"GET /healthz HTTP/1.1\r\n"[..],
        b"Host: registry\r\n",
        b"\r\n",
    ] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        conn.write_all(piece).await.unwrap();
    }
    let head = response_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// The path of an upload's `Location`, which may be absolute.
fn upload_path(location: &str) -> String {
    match location.find("/v2/") {
        Some(i) => location[i..].to_owned(),
        None => panic!("not an upload location: {location}"),
    }
}

/// Sends a `PATCH` of `len` bytes to `path` whose body the caller then writes.
async fn patch_head(r: &Registry, path: &str, len: usize) -> TcpStream {
    let mut conn = TcpStream::connect(r.host()).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: registry\r\nAuthorization: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n",
        bulwark_testkit::admin_basic_auth()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn
}

#[tokio::test]
async fn a_request_body_that_stalls_is_aborted_and_a_slow_one_is_not() {
    let r = registry();
    let data = bytes(7, 100);

    // Slow but steady: ten pieces 300 ms apart, 3 s in all but never a second silent.
    let path = upload_path(&r.start_upload(REPO).await);
    let mut conn = patch_head(&r, &path, data.len()).await;
    for piece in data.chunks(10) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.write_all(piece).await.unwrap();
    }
    let head = response_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    assert!(head.to_ascii_lowercase().contains("range: 0-99"), "{head}");

    // Stalled after 10 of 100 bytes: the request is aborted about a second later.
    let path = upload_path(&r.start_upload(REPO).await);
    let mut conn = patch_head(&r, &path, data.len()).await;
    conn.write_all(&data[..10]).await.unwrap();
    let stalled = Instant::now();
    let (answer, after) = until_closed(&mut conn, stalled).await;
    assert_closed_after_the_timeout("stalled body", after);
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains(" 202 "), "{answer}");

    // The session is as it was: a chunk that did not arrive whole is not recorded (an
    // empty session reports `0-0`, as the reference does). The client starts over and
    // completes the blob.
    let status = r.get(&path).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), "0-0");
    let digest = Digest::sha256_of(&data);
    let done = r
        .req(Method::PUT, &format!("{path}?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::CREATED);
    assert_eq!(
        body(r.get(&format!("/v2/{REPO}/blobs/{digest}")).await).await,
        data
    );
}

#[tokio::test]
async fn a_download_the_client_stops_reading_is_cut_off() {
    let r = registry();
    let data = bytes(9, 8 << 20);
    let digest = r.push_blob(REPO, &data).await;
    let mut conn = TcpStream::connect(r.host()).await.unwrap();
    let request = format!(
        "GET /v2/{REPO}/blobs/{digest} HTTP/1.1\r\nHost: registry\r\nAuthorization: {}\r\n\r\n",
        bulwark_testkit::admin_basic_auth()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // The client reads nothing for three seconds, then everything there is: what the
    // kernel's buffers held when the server gave up, not the blob.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed = Instant::now();
    let (answer, _) = until_closed(&mut conn, resumed).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert!(
        answer.len() < data.len() / 2,
        "{} of {} bytes arrived",
        answer.len(),
        data.len()
    );
    assert!(resumed.elapsed() < Duration::from_secs(2));
}
