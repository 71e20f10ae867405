//! `gpt2 download`: fetch a GPT-2 checkpoint (config.json, model.safetensors, tokenizer.json) from the
//! Hugging Face hub into a folder that `HfModel::open` reads. Native only.
//!
//! Each file goes to `FILE.part` first and is renamed to `FILE` only once complete (its size matches the
//! server's Content-Length / Content-Range total). An existing `.part` is resumed with
//! `Range: bytes=N-`; a server that ignores the range (200 instead of 206) restarts the file. A dropped
//! connection is resumed the same way, a bounded number of times. Redirects (the hub sends the large
//! files to a CDN) are followed. Anything that is not a 2xx, or is an HTML page, is refused and its
//! partial file deleted. Files already complete from an earlier run are kept. At the end the folder is
//! parsed: the config, every tensor's presence and shape, and tokenizer.json as JSON (the CLI then builds
//! the tokenizer from it: io does not reach up into text).
//!
//! A host that cannot be reached at all (no DNS answer, connection refused, no route, the connection
//! not set up in time) is not a dropped download: it is retried `connect_retries` times (once, by
//! default) and then refused with the reason, in seconds, so an offline machine is told at once. Every
//! retry is reported through `DownloadOptions::on_retry` (the CLI prints it).

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The Hugging Face hub.
pub const HUB_URL: &str = "https://huggingface.co";

/// The models `download` knows, with their hub repositories.
pub const MODELS: [(&str, &str); 5] = [
    ("gpt2", "openai-community/gpt2"),
    ("gpt2-medium", "openai-community/gpt2-medium"),
    ("gpt2-large", "openai-community/gpt2-large"),
    ("gpt2-xl", "openai-community/gpt2-xl"),
    ("distilgpt2", "distilbert/distilgpt2"),
];

/// Fetched in this order: the small files first, so a wrong name or host fails fast.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The hub repository of `model`.
pub fn repo_for(model: &str) -> Option<&'static str> {
    MODELS.iter().find(|(m, _)| *m == model).map(|(_, r)| *r)
}

/// Where a download stands, reported as bytes arrive.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The file being fetched (`model.safetensors`).
    pub file: String,
    /// Bytes of it on disk so far (a resumed file starts above 0).
    pub done: u64,
    /// Its full size, once the server has said.
    pub total: Option<u64>,
    /// Bytes per second over this request so far.
    pub rate: f64,
}

/// Knobs for `download_with`. `Default` is what `download` uses.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// How many times one file may be resumed after a dropped connection (or a 5xx) before giving up.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one (capped at 30 s).
    pub backoff: Duration,
    pub connect_timeout: Duration,
    /// A read that receives nothing for this long counts as a dropped connection.
    pub read_timeout: Duration,
    /// How many times to try again when the host cannot be reached at all (see the module's notes).
    pub connect_retries: u32,
    /// Told about every retry, in words (why, and when the next attempt comes). Default: stderr.
    pub on_retry: fn(&str),
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            retries: 8,
            backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            connect_retries: 1,
            // Printed (a warning through `log` was invisible: the CLI installs no logger).
            on_retry: |m| eprintln!("\n{m}"),
        }
    }
}

/// Download `model` (gpt2, gpt2-medium, gpt2-large, gpt2-xl or distilgpt2) from `hub_url` (normally
/// [`HUB_URL`]) into `out_dir`, then check that the folder loads.
pub fn download(model: &str, out_dir: &Path, hub_url: &str, progress: impl FnMut(Progress)) -> Result<()> {
    download_with(model, out_dir, hub_url, &DownloadOptions::default(), progress)
}

pub fn download_with(
    model: &str,
    out_dir: &Path,
    hub_url: &str,
    opts: &DownloadOptions,
    mut progress: impl FnMut(Progress),
) -> Result<()> {
    let repo = repo_for(model).ok_or_else(|| {
        let names: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
        Error::InvalidArgument(format!(
            "unknown model \"{model}\"; `download` knows {}",
            names.join(", ")
        ))
    })?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(10)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        // Byte ranges and sizes must refer to the file itself, not a compressed rendition.
        .accept_encoding("identity")
        .user_agent(concat!("gpt2-webgpu/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let hub = hub_url.trim_end_matches('/');
    for file in FILES {
        let url = format!("{hub}/{repo}/resolve/main/{file}");
        let dest = out_dir.join(file);
        if !dest.is_file() {
            fetch(&agent, &url, &dest, file, opts, &mut progress)?;
        }
        let checked = match file {
            "config.json" => std::fs::read(&dest)
                .map_err(|e| Error::io(&dest, e))
                .and_then(|b| Gpt2Config::from_json(&b).map(|_| ())),
            // io sits below text, so only the JSON is checked here; the caller (the CLI) builds the
            // tokenizer from it and deletes the file if that fails.
            "tokenizer.json" => std::fs::read(&dest).map_err(|e| Error::io(&dest, e)).and_then(|b| {
                serde_json::from_slice::<serde_json::Value>(&b)
                    .map(|_| ())
                    .map_err(|e| Error::Tokenizer(format!("{} is not JSON ({e}); run the download again", dest.display())))
            }),
            // Parses the safetensors header and checks every tensor against config.json.
            _ => crate::io::hf::HfModel::open(out_dir).map(|_| ()),
        };
        if let Err(e) = checked {
            // Delete it, so that running the download again fetches it afresh.
            let _ = std::fs::remove_file(&dest);
            return Err(e);
        }
    }
    Ok(())
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().expect("file name").to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// The first bytes of an HTML page (a login wall, an error page served with 200).
fn looks_like_html(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &head[i..])
        .unwrap_or(&[]);
    let lower: Vec<u8> = start.iter().take(16).map(|b| b.to_ascii_lowercase()).collect();
    lower.starts_with(b"<!doctype") || lower.starts_with(b"<html")
}

/// Why one attempt at a file stopped.
enum Attempt {
    /// The file is complete in `.part`.
    Done,
    /// Transient (dropped connection, timeout, 5xx, short body): resume after a pause.
    Retry(String),
    /// The host could not be reached at all (DNS, refused, unreachable, connect timeout).
    Unreachable(String),
}

/// Whether a request error means the host could not be reached at all (nothing was exchanged), and
/// the words for it.
fn unreachable(e: &ureq::Error) -> Option<String> {
    use std::io::ErrorKind as K;
    match e {
        ureq::Error::HostNotFound => Some("the host name could not be resolved (no DNS answer: is this machine offline?)".into()),
        ureq::Error::ConnectionFailed => Some("the connection could not be set up".into()),
        ureq::Error::Timeout(ureq::Timeout::Resolve) => Some("resolving the host name timed out".into()),
        ureq::Error::Timeout(ureq::Timeout::Connect) => Some("connecting timed out".into()),
        ureq::Error::Io(io) => match io.kind() {
            K::ConnectionRefused => Some(format!("the connection was refused ({io})")),
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown | K::AddrNotAvailable => {
                Some(format!("the network is unreachable ({io})"))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Fetch `url` into `dest` via `dest.part`, resuming and retrying. On a refusal (non-2xx other than
/// the transient ones, HTML) the `.part` is deleted; after too many dropped connections it is kept, so
/// that the next run resumes.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    file: &str,
    opts: &DownloadOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    let part = part_path(dest);
    let mut failures = 0u32;
    let mut unreachable_failures = 0u32;
    loop {
        match attempt(agent, url, &part, file, progress) {
            Ok(Attempt::Unreachable(why)) => {
                unreachable_failures += 1;
                if unreachable_failures > opts.connect_retries {
                    return Err(Error::Download {
                        url: url.into(),
                        reason: format!(
                            "{why}; gave up after {unreachable_failures} attempt{}. Check the network connection (or pass a local Hugging Face folder instead of downloading).",
                            if unreachable_failures == 1 { "" } else { "s" }
                        ),
                    });
                }
                (opts.on_retry)(&format!(
                    "{url}: {why}; trying again in {:?} (attempt {} of {})",
                    opts.backoff,
                    unreachable_failures + 1,
                    opts.connect_retries + 1
                ));
                std::thread::sleep(opts.backoff);
            }
            Ok(Attempt::Done) => {
                std::fs::rename(&part, dest).map_err(|e| Error::io(dest, e))?;
                return Ok(());
            }
            Ok(Attempt::Retry(why)) => {
                failures += 1;
                if failures > opts.retries {
                    let kept = match std::fs::metadata(&part) {
                        Ok(m) if m.len() > 0 => {
                            format!(
                                " The partial file {} ({} bytes) is kept: run the download again to resume.",
                                part.display(),
                                m.len()
                            )
                        }
                        _ => " Check the network connection and the hub URL, then try again.".into(),
                    };
                    return Err(Error::Download {
                        url: url.into(),
                        reason: format!("{why}; gave up after {failures} attempts.{kept}"),
                    });
                }
                let wait = opts
                    .backoff
                    .saturating_mul(1 << (failures - 1).min(5))
                    .min(Duration::from_secs(30));
                (opts.on_retry)(&format!(
                    "{url}: {why}; resuming in {wait:?} (attempt {} of {})",
                    failures + 1,
                    opts.retries + 1
                ));
                std::thread::sleep(wait);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        }
    }
}

fn header<'a>(resp: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `Content-Range: bytes START-END/TOTAL` -> (START, TOTAL). TOTAL may be `*` (unknown).
fn content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = if total.trim() == "*" {
        None
    } else {
        Some(total.trim().parse().ok()?)
    };
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total))
}

fn attempt(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    file: &str,
    progress: &mut impl FnMut(Progress),
) -> Result<Attempt> {
    let refuse = |reason: String| Error::Download {
        url: url.into(),
        reason,
    };
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(e) => {
            return Ok(match unreachable(&e) {
                Some(why) => Attempt::Unreachable(why),
                None => Attempt::Retry(format!("request failed ({e})")),
            })
        }
    };
    let status = resp.status().as_u16();
    // Where this response's body starts in the file, and the file's full size if known.
    let (start, total) = match status {
        206 => match header(&resp, "content-range").and_then(content_range) {
            Some((s, t)) if s == have => (s, t),
            other => {
                // Not the range we asked for: start over.
                let _ = std::fs::remove_file(part);
                return Ok(Attempt::Retry(format!(
                    "the server answered a different range ({other:?}) than bytes={have}-; restarting the file"
                )));
            }
        },
        200..=299 => {
            // 200 to a Range request: the server ignores ranges and sends the whole file.
            (0, resp.body().content_length())
        }
        416 if have > 0 => {
            // Nothing past `have`: done if `have` is the full size, otherwise the .part is stale.
            let total = header(&resp, "content-range")
                .and_then(content_range)
                .and_then(|(_, t)| t);
            if total == Some(have) {
                return Ok(Attempt::Done);
            }
            let _ = std::fs::remove_file(part);
            return Ok(Attempt::Retry(format!(
                "the partial file ({have} bytes) does not fit the server's copy; restarting"
            )));
        }
        500..=599 | 408 | 429 => return Ok(Attempt::Retry(format!("the server answered HTTP {status}"))),
        _ => {
            let hint = match status {
                401 | 403 => " (the repository may be private or gated)",
                404 => " (no such file: check the model name and the hub URL)",
                _ => "",
            };
            return Err(refuse(format!(
                "the server answered HTTP {status}{hint}; nothing was kept"
            )));
        }
    };
    if let Some(ct) = header(&resp, "content-type") {
        if ct.trim().to_ascii_lowercase().starts_with("text/html") {
            return Err(refuse(format!("the server sent an HTML page (Content-Type {ct}) instead of {file}; nothing was kept. Check the hub URL.")));
        }
    }

    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(start == 0)
        .append(start > 0)
        .open(part)
        .map_err(|e| Error::io(part, e))?;
    let mut done = start;
    let t0 = Instant::now();
    let mut last_report = t0;
    let mut report = |done: u64, force: bool, progress: &mut dyn FnMut(Progress)| {
        let now = Instant::now();
        if force || now.duration_since(last_report) >= Duration::from_millis(100) {
            last_report = now;
            let secs = now.duration_since(t0).as_secs_f64();
            let rate = if secs > 0.0 { (done - start) as f64 / secs } else { 0.0 };
            progress(Progress {
                file: file.into(),
                done,
                total,
                rate,
            });
        }
    };
    report(done, true, progress);
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut first = true;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                out.flush().map_err(|e| Error::io(part, e))?;
                report(done, true, progress);
                return Ok(Attempt::Retry(format!(
                    "the connection dropped after {done} bytes ({e})"
                )));
            }
        };
        if first && start == 0 {
            first = false;
            if looks_like_html(&buf[..n]) {
                drop(out);
                return Err(refuse(format!(
                    "the server sent an HTML page instead of {file}; nothing was kept. Check the hub URL."
                )));
            }
        }
        out.write_all(&buf[..n]).map_err(|e| Error::io(part, e))?;
        done += n as u64;
        if total.is_some_and(|t| done > t) {
            return Err(refuse(format!(
                "the server sent more than the {} bytes it announced; nothing was kept",
                total.unwrap()
            )));
        }
        report(done, false, progress);
    }
    out.sync_all().map_err(|e| Error::io(part, e))?;
    report(done, true, progress);
    match total {
        Some(t) if done < t => Ok(Attempt::Retry(format!(
            "the connection closed after {done} of {t} bytes"
        ))),
        _ => Ok(Attempt::Done),
    }
}
