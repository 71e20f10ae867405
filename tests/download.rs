//! `download` against a small HTTP server on 127.0.0.1 that serves tiny-gpt2 in the hub's layout
//! (`/openai-community/gpt2/resolve/main/FILE`), honours Range, and can misbehave: drop the connection
//! mid-file, ignore Range, redirect, answer 404 or an HTML page.

mod common;

use common::{tiny_file, TempDir};
use gpt2_webgpu::io::download::{download_with, DownloadOptions, Progress, FILES};
use gpt2_webgpu::error::Error;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HUB_PREFIX: &str = "/openai-community/gpt2/resolve/main/";

/// What the server does.
#[derive(Clone, Default)]
struct Plan {
    /// URL path -> file bytes.
    files: HashMap<String, Arc<Vec<u8>>>,
    /// URL path -> path it redirects to (302, absolute URL like the hub's CDN redirects).
    redirects: HashMap<String, String>,
    /// Paths answered with an HTML page, status 200, Content-Type text/html.
    html: HashSet<String>,
    /// Paths answered with an HTML page, status 200, but Content-Type application/octet-stream.
    html_disguised: HashSet<String>,
    /// (path, bytes, times): the first `times` requests of `path` send `bytes` of the body, then close.
    drop_after: Option<(String, usize, usize)>,
    /// Answer every request with the whole file (200), as servers without range support do.
    ignore_range: bool,
}

#[derive(Clone, Debug)]
struct Req {
    path: String,
    range: Option<String>,
}

struct Server {
    url: String,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(plan: Plan) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2, base) = (log.clone(), stop.clone(), url.clone());
        let thread = std::thread::spawn(move || {
            let drops = AtomicUsize::new(0);
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = handle(stream, &plan, &base, &log2, &drops);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            url,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    fn requests_for(&self, path: &str) -> Vec<Req> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(
    mut s: TcpStream,
    plan: &Plan,
    base: &str,
    log: &Mutex<Vec<Req>>,
    drops: &AtomicUsize,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    // Read the request head (GET has no body).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || head.len() > 16384 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_string());
    log.lock().unwrap().push(Req {
        path: path.clone(),
        range: range.clone(),
    });

    let respond = |s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]| -> std::io::Result<()> {
        let mut h = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            h += &format!("{k}: {v}\r\n");
        }
        h += "\r\n";
        s.write_all(h.as_bytes())?;
        s.write_all(body)?;
        s.flush()
    };
    const PAGE: &[u8] =
        b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n";
    if let Some(to) = plan.redirects.get(&path) {
        return respond(&mut s, "302 Found", &[("Location", format!("{base}{to}"))], b"");
    }
    if plan.html.contains(&path) {
        return respond(
            &mut s,
            "200 OK",
            &[("Content-Type", "text/html; charset=utf-8".into())],
            PAGE,
        );
    }
    if plan.html_disguised.contains(&path) {
        return respond(
            &mut s,
            "200 OK",
            &[("Content-Type", "application/octet-stream".into())],
            PAGE,
        );
    }
    let Some(file) = plan.files.get(&path) else {
        return respond(
            &mut s,
            "404 Not Found",
            &[("Content-Type", "text/plain".into())],
            b"Entry not found",
        );
    };
    let len = file.len();
    let start = match (&range, plan.ignore_range) {
        (Some(r), false) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok()),
        _ => None,
    };
    let (status, body, extra) = match start {
        Some(n) if n >= len => {
            return respond(
                &mut s,
                "416 Range Not Satisfiable",
                &[("Content-Range", format!("bytes */{len}"))],
                b"",
            );
        }
        Some(n) => (
            "206 Partial Content",
            &file[n..],
            vec![("Content-Range", format!("bytes {n}-{}/{len}", len - 1))],
        ),
        None => ("200 OK", &file[..], vec![]),
    };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Accept-Ranges", "bytes".into()),
    ];
    headers.extend(extra);
    if let Some((p, bytes, times)) = &plan.drop_after {
        if *p == path && drops.fetch_add(1, Ordering::Relaxed) < *times {
            // Announce the whole body, send part of it, hang up.
            let mut h = format!(
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in &headers {
                h += &format!("{k}: {v}\r\n");
            }
            h += "\r\n";
            s.write_all(h.as_bytes())?;
            s.write_all(&body[..(*bytes).min(body.len())])?;
            s.flush()?;
            return s.shutdown(Shutdown::Both);
        }
    }
    respond(&mut s, status, &headers, body)
}

/// The tiny-gpt2 fixture in the hub layout.
fn hub_plan() -> Plan {
    let mut plan = Plan::default();
    for f in FILES {
        plan.files
            .insert(format!("{HUB_PREFIX}{f}"), Arc::new(common::read(&tiny_file(f))));
    }
    plan
}

fn fast() -> DownloadOptions {
    DownloadOptions {
        retries: 3,
        backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..DownloadOptions::default()
    }
}

static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
fn count_retry(m: &str) {
    eprintln!("retry: {m}");
    RETRIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_identical_to_fixture(dir: &Path) {
    for f in FILES {
        let got = std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(got == common::read(&tiny_file(f)), "{f} differs from the fixture");
    }
    assert_eq!(
        names_in(dir),
        vec!["config.json", "model.safetensors", "tokenizer.json"]
    );
}

#[test]
fn plain_download_parses_and_is_kept() {
    let server = Server::start(hub_plan());
    let tmp = TempDir::new("dl-plain");
    let mut events: Vec<Progress> = Vec::new();
    download_with("gpt2", tmp.path(), &server.url, &fast(), |p| events.push(p)).expect("download");
    assert_identical_to_fixture(tmp.path());
    let st_len = std::fs::metadata(tiny_file("model.safetensors")).unwrap().len();
    let last = events
        .iter()
        .rev()
        .find(|p| p.file == "model.safetensors")
        .expect("progress for model.safetensors");
    assert_eq!((last.done, last.total), (st_len, Some(st_len)));
    assert!(events
        .iter()
        .all(|p| p.rate >= 0.0 && p.total.is_none_or(|t| p.done <= t)));
    assert_eq!(server.requests().len(), 3);
    for r in server.requests() {
        assert!(r.range.is_none(), "{r:?}");
    }
    // A second run keeps the complete files (no request) and checks them again.
    download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).expect("second download");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn dropped_connection_resumes_with_range_through_a_redirect() {
    let st = format!("{HUB_PREFIX}model.safetensors");
    let cdn = "/cdn/blobs/model.safetensors".to_string();
    let mut plan = hub_plan();
    let bytes = plan.files[&st].clone();
    let half = bytes.len() / 2;
    plan.files.insert(cdn.clone(), bytes);
    plan.redirects.insert(st.clone(), cdn.clone());
    plan.drop_after = Some((cdn.clone(), half, 1));
    let server = Server::start(plan);
    let tmp = TempDir::new("dl-resume");
    download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).expect("download resumes");
    assert_identical_to_fixture(tmp.path());
    let reqs = server.requests_for(&cdn);
    assert_eq!(reqs.len(), 2, "{:?}", server.requests());
    assert_eq!(reqs[0].range, None);
    let resumed_at: usize = reqs[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .expect("a Range request");
    assert!(
        resumed_at > 0 && resumed_at <= half,
        "resumed at {resumed_at}, half is {half}"
    );
    // The hub URL was asked twice too, and forwarded the Range header through the redirect.
    assert_eq!(server.requests_for(&st).len(), 2);
}

#[test]
fn server_ignoring_range_restarts_the_file() {
    let mut plan = hub_plan();
    plan.ignore_range = true;
    let server = Server::start(plan);
    let tmp = TempDir::new("dl-norange");
    // A stale partial file with wrong bytes: resuming it would corrupt the result.
    std::fs::write(tmp.path().join("model.safetensors.part"), vec![0xAB; 5000]).unwrap();
    download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).expect("download");
    assert_identical_to_fixture(tmp.path());
    let reqs = server.requests_for(&format!("{HUB_PREFIX}model.safetensors"));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].range.as_deref(), Some("bytes=5000-"));
}

#[test]
fn complete_part_file_is_finished_by_a_416() {
    let server = Server::start(hub_plan());
    let tmp = TempDir::new("dl-416");
    std::fs::copy(
        tiny_file("model.safetensors"),
        tmp.path().join("model.safetensors.part"),
    )
    .unwrap();
    download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).expect("download");
    assert_identical_to_fixture(tmp.path());
}

#[test]
fn not_found_is_refused_and_nothing_kept() {
    let mut plan = hub_plan();
    plan.files.remove(&format!("{HUB_PREFIX}tokenizer.json"));
    let server = Server::start(plan);
    let tmp = TempDir::new("dl-404");
    let e = download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).unwrap_err();
    match &e {
        Error::Download { url, reason } => {
            assert!(
                url.ends_with("/openai-community/gpt2/resolve/main/tokenizer.json"),
                "{url}"
            );
            assert!(reason.contains("404"), "{reason}");
        }
        other => panic!("expected Error::Download, got {other:?}"),
    }
    eprintln!("ok: {e}");
    // config.json came first and is complete; nothing of the tokenizer is left, and the model was not tried.
    assert_eq!(names_in(tmp.path()), vec!["config.json"]);
    assert_eq!(
        server.requests_for(&format!("{HUB_PREFIX}tokenizer.json")).len(),
        1,
        "a 404 is not retried"
    );
}

#[test]
fn html_page_is_refused_and_nothing_kept() {
    for disguised in [false, true] {
        let mut plan = hub_plan();
        let st = format!("{HUB_PREFIX}model.safetensors");
        if disguised {
            plan.html_disguised.insert(st);
        } else {
            plan.html.insert(st);
        }
        let server = Server::start(plan);
        let tmp = TempDir::new("dl-html");
        let e = download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).unwrap_err();
        assert!(
            matches!(&e, Error::Download { reason, .. } if reason.contains("HTML")),
            "{e:?}"
        );
        eprintln!("ok: {e}");
        assert_eq!(names_in(tmp.path()), vec!["config.json", "tokenizer.json"]);
    }
}

#[test]
fn endless_drops_give_up_after_the_retries_and_keep_the_part() {
    let st = format!("{HUB_PREFIX}model.safetensors");
    let mut plan = hub_plan();
    plan.drop_after = Some((st.clone(), 1000, usize::MAX));
    let server = Server::start(plan);
    let tmp = TempDir::new("dl-drops");
    let opts = fast();
    let e = download_with("gpt2", tmp.path(), &server.url, &opts, |_| {}).unwrap_err();
    assert!(
        matches!(&e, Error::Download { reason, .. } if reason.contains("run the download again to resume")),
        "{e:?}"
    );
    eprintln!("ok: {e}");
    assert_eq!(server.requests_for(&st).len(), opts.retries as usize + 1);
    // Each attempt got 1000 more bytes; they are kept for the next run.
    let part = std::fs::metadata(tmp.path().join("model.safetensors.part"))
        .unwrap()
        .len();
    assert_eq!(part, 1000 * (opts.retries as u64 + 1));
    assert!(!tmp.path().join("model.safetensors").exists());
}

#[test]
fn broken_weights_fail_verification_and_are_deleted() {
    let mut plan = hub_plan();
    let st = format!("{HUB_PREFIX}model.safetensors");
    let mut bytes = (*plan.files[&st]).clone();
    bytes.truncate(bytes.len() - 4096); // served complete (Content-Length matches), but not a whole file
    plan.files.insert(st, Arc::new(bytes));
    let server = Server::start(plan);
    let tmp = TempDir::new("dl-broken");
    let e = download_with("gpt2", tmp.path(), &server.url, &fast(), |_| {}).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { .. } | Error::BadSafetensors { .. }),
        "{e:?}"
    );
    eprintln!("ok: {e}");
    assert_eq!(names_in(tmp.path()), vec!["config.json", "tokenizer.json"]);
}

#[test]
fn unknown_model_and_unreachable_hub() {
    let tmp = TempDir::new("dl-unknown");
    let e = download_with("gpt3", tmp.path(), "http://127.0.0.1:9", &fast(), |_| {}).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("gpt2-medium")),
        "{e:?}"
    );
    // Nothing listens on port 9 (discard) of 127.0.0.1 in the test environment: connection refused.
    // With the default options (the ones `gpt2 download` and `./build.sh serve` use) that fails within
    // seconds, says why, and reports its one retry; a dropped download would be retried 8 times.
    RETRIES.store(0, std::sync::atomic::Ordering::SeqCst);
    let opts = DownloadOptions { on_retry: count_retry, ..DownloadOptions::default() };
    let t0 = Instant::now();
    let e = download_with("distilgpt2", tmp.path(), "http://127.0.0.1:9", &opts, |_| {}).unwrap_err();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        matches!(&e, Error::Download { url, reason } if url.contains("/distilbert/distilgpt2/resolve/main/config.json")
            && reason.contains("refused") && reason.contains("gave up after 2 attempts") && reason.contains("network")),
        "{e:?}"
    );
    assert_eq!(RETRIES.load(std::sync::atomic::Ordering::SeqCst), 1, "the retry was reported");
    assert!(secs < 5.0, "an unreachable host took {secs:.1} s to refuse");
    eprintln!("ok ({secs:.1} s): {e}");
}
