//! Where vulnerability data comes from: a path (file or directory) or an `http(s)://` URL of
//! one OSV file (`.json`, `.jsonl`, `.zip`, such as OSV's per-ecosystem `all.zip`). A URL
//! is downloaded into a temporary file, streamed (never held in memory whole) and capped,
//! then read exactly as a local file of the same format.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::{
    CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

/// One source of OSV records, as configured (`[scanner] vulndb`) or given to
/// `bulwark vulndb import`: written as a string, parsed (and its URL scheme checked) once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Source {
    Path(PathBuf),
    Url(Url),
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        if !s.contains("://") {
            return Ok(Source::Path(PathBuf::from(s)));
        }
        let url = Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
        match url.scheme() {
            "http" | "https" => Ok(Source::Url(url)),
            other => Err(format!(
                "{s:?}: vulnerability data is read from paths or http(s):// URLs, not {other}://"
            )),
        }
    }
}

impl TryFrom<String> for Source {
    type Error = String;

    fn try_from(s: String) -> Result<Source, String> {
        s.parse()
    }
}

impl From<Source> for String {
    fn from(source: Source) -> String {
        source.to_string()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(path) => write!(f, "{}", path.display()),
            Source::Url(url) => write!(f, "{url}"),
        }
    }
}

/// What makes a download conditional: the last successful one's `ETag` and
/// `Last-Modified`.
#[derive(Clone, Debug, Default)]
struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

/// Downloads OSV files over HTTP. It remembers, in memory, each URL's validators from its
/// last download that was imported, so that an unchanged feed costs one `304`; a restarted
/// node (or another node) downloads once again.
pub struct Downloader {
    http: reqwest::Client,
    max_bytes: u64,
    imported: Mutex<HashMap<Url, Validators>>,
}

/// The answer to a download.
pub enum Fetched {
    /// `304 Not Modified`: the last imported download is still current.
    Unchanged,
    File(Download),
}

/// A downloaded file, named with the extension of its format so that it is read like a
/// local file; deleted when dropped.
pub struct Download {
    file: NamedTempFile,
    url: Url,
    validators: Validators,
}

impl Download {
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl Downloader {
    /// `max_bytes` caps each body; `timeout` each whole download.
    pub fn new(max_bytes: u64, timeout: Duration) -> Result<Downloader> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("bulwark/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30).min(timeout))
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(Downloader {
            http,
            max_bytes,
            imported: Mutex::new(HashMap::new()),
        })
    }

    /// Downloads `url` into a temporary file.
    pub async fn fetch(&self, url: &Url) -> Result<Download> {
        match self.download(url, None).await? {
            Fetched::File(download) => Ok(download),
            Fetched::Unchanged => bail!("{url}: answered 304 to an unconditional request"),
        }
    }

    /// Downloads `url` only if it changed since its last download that was
    /// [`remember`](Self::remember)ed.
    pub async fn fetch_if_changed(&self, url: &Url) -> Result<Fetched> {
        let known = self
            .imported
            .lock()
            .expect("not poisoned")
            .get(url)
            .cloned();
        self.download(url, known.as_ref()).await
    }

    async fn download(&self, url: &Url, known: Option<&Validators>) -> Result<Fetched> {
        let mut request = self.http.get(url.clone());
        if let Some(known) = known {
            if let Some(etag) = &known.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &known.last_modified {
                request = request.header(IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request
            .send()
            .await
            .with_context(|| format!("downloading {url}"))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::Unchanged);
        }
        if !status.is_success() {
            bail!("downloading {url}: the server answered {status}");
        }
        let too_large = || format!("downloading {url}: larger than {} bytes", self.max_bytes);
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            bail!(too_large());
        }
        let suffix = format_suffix(url, response.headers())?;
        let mut file = tempfile::Builder::new()
            .prefix("bulwark-vulndb-")
            .suffix(suffix)
            .tempfile()
            .context("creating a temporary file")?;
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("downloading {url}"))?
        {
            written += chunk.len() as u64;
            if written > self.max_bytes {
                bail!(too_large());
            }
            file.write_all(&chunk)
                .context("writing the download to a temporary file")?;
        }
        file.flush().context("writing the download")?;
        let header = |name: reqwest::header::HeaderName| response.headers().get(name).cloned();
        Ok(Fetched::File(Download {
            file,
            url: url.clone(),
            validators: Validators {
                etag: header(ETAG),
                last_modified: header(LAST_MODIFIED),
            },
        }))
    }

    /// Keeps `download`'s validators once it was imported: the next conditional fetch of
    /// its URL asks only for something newer.
    pub fn remember(&self, download: Download) {
        self.imported
            .lock()
            .expect("not poisoned")
            .insert(download.url, download.validators);
    }
}

/// The file name suffix that tells the reader the format: from the URL path's extension,
/// else from the `Content-Type`.
fn format_suffix(url: &Url, headers: &HeaderMap) -> Result<&'static str> {
    let name = url.path().rsplit('/').next().unwrap_or_default();
    for suffix in [".jsonl", ".json", ".zip"] {
        if name.ends_with(suffix) {
            return Ok(suffix);
        }
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/zip" | "application/x-zip-compressed" => Ok(".zip"),
        "application/json" => Ok(".json"),
        "application/jsonl" | "application/x-ndjson" | "application/jsonlines" => Ok(".jsonl"),
        other => bail!(
            "{url}: neither the path's extension (.json, .jsonl, .zip) nor the content type \
             ({other:?}) says what format it is"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_http_urls_are_sources_other_schemes_are_refused() {
        assert_eq!(
            "/var/osv".parse::<Source>(),
            Ok(Source::Path("/var/osv".into()))
        );
        let url: Source = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
            .parse()
            .unwrap();
        assert!(matches!(url, Source::Url(_)));
        assert_eq!(
            String::from(url),
            "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
        );
        let err = "ftp://example.org/all.zip".parse::<Source>().unwrap_err();
        assert!(err.contains("ftp://"), "{err}");
        assert!("http://[bad".parse::<Source>().is_err());
    }

    #[test]
    fn the_format_comes_from_the_extension_else_the_content_type() {
        let headers = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            h
        };
        let url = |s: &str| Url::parse(s).unwrap();
        let none = HeaderMap::new();
        assert_eq!(
            format_suffix(&url("http://h/PyPI/all.zip"), &none).unwrap(),
            ".zip"
        );
        assert_eq!(
            format_suffix(&url("http://h/osv.jsonl?x=1"), &none).unwrap(),
            ".jsonl"
        );
        assert_eq!(
            format_suffix(&url("http://h/feed"), &headers("application/zip")).unwrap(),
            ".zip"
        );
        assert_eq!(
            format_suffix(
                &url("http://h/feed"),
                &headers("application/json; charset=utf-8")
            )
            .unwrap(),
            ".json"
        );
        assert!(format_suffix(&url("http://h/feed"), &headers("text/html")).is_err());
    }

    /// A body without `Content-Length` is counted as it streams and cut at the limit.
    #[tokio::test]
    async fn an_undeclared_body_is_refused_past_the_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "http://{}/feed.jsonl",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let server = tokio::spawn(async move {
            for body_len in [100usize, 101] {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let _ = conn.read(&mut request).await.unwrap();
                let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
                conn.write_all(head.as_bytes()).await.unwrap();
                conn.write_all(&vec![b' '; body_len]).await.unwrap();
            }
        });
        let downloads = Downloader::new(100, Duration::from_secs(10)).unwrap();
        let download = downloads.fetch(&url).await.unwrap();
        assert_eq!(std::fs::metadata(download.path()).unwrap().len(), 100);
        assert!(download.path().to_string_lossy().ends_with(".jsonl"));
        let err = downloads.fetch(&url).await.err().unwrap();
        assert!(
            format!("{err:#}").contains("larger than 100 bytes"),
            "{err:#}"
        );
        server.await.unwrap();
    }
}
