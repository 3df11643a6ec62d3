//! Syslog, RFC 5424 messages: over UDP (one datagram each, RFC 5426) or TCP with
//! octet-counting framing (RFC 6587). The event's fields go as structured data
//! (`bulwark@32473`, the documentation enterprise number of RFC 5612) and the whole event as
//! JSON in the message, so that collectors can index either.

use std::net::SocketAddr;

use bulwark_events::Event;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::buffer::Deliver;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Clone, Debug)]
pub struct SyslogSettings {
    pub address: SocketAddr,
    pub transport: Transport,
    /// 0–23; 13 is "log audit".
    pub facility: u8,
    /// HOSTNAME of the messages.
    pub hostname: String,
    pub app_name: String,
}

pub struct Syslog {
    settings: SyslogSettings,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
}

impl Syslog {
    pub fn new(settings: SyslogSettings) -> Syslog {
        Syslog {
            settings,
            udp: None,
            tcp: None,
        }
    }

    async fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        let address = self.settings.address;
        match self.settings.transport {
            Transport::Udp => {
                if self.udp.is_none() {
                    let local = if address.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let socket = UdpSocket::bind(local).await?;
                    socket.connect(address).await?;
                    self.udp = Some(socket);
                }
                if let Some(socket) = &self.udp {
                    socket.send(message).await?;
                }
            }
            Transport::Tcp => {
                if self.tcp.is_none() {
                    self.tcp = Some(TcpStream::connect(address).await?);
                }
                if let Some(stream) = &mut self.tcp {
                    let framed = [format!("{} ", message.len()).as_bytes(), message].concat();
                    if let Err(e) = stream.write_all(&framed).await {
                        // Reconnect next time.
                        self.tcp = None;
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Deliver for Syslog {
    async fn deliver(&mut self, batch: Vec<Event>, _closing: bool) -> u64 {
        let mut lost = 0;
        for event in &batch {
            let message = format(&self.settings, event);
            // One retry: a TCP connection the collector closed is reopened.
            let sent = match self.send(&message).await {
                Ok(()) => Ok(()),
                Err(_) => self.send(&message).await,
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "sending an action log entry to syslog failed");
                lost += 1;
            }
        }
        lost
    }
}

/// Severity: warning for refusals and failures, notice for the rest.
fn severity(kind: &str) -> u8 {
    if kind.ends_with("failure") || kind.ends_with("failed") {
        4
    } else {
        5
    }
}

/// PRINTUSASCII without spaces, at most `max` characters, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped.
fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn format(settings: &SyslogSettings, event: &Event) -> Vec<u8> {
    let pri = u32::from(settings.facility.min(23)) * 8 + u32::from(severity(&event.kind));
    let mut sd = String::from("[bulwark@32473");
    let address = event.origin.address.map(|a| a.to_string());
    let params = [
        ("kind", Some(event.kind.as_str())),
        ("actor", Some(event.actor.name.as_str())),
        ("actorKind", Some(event.actor.kind.as_str())),
        ("address", address.as_deref()),
        ("namespace", event.namespace.as_deref()),
        ("repository", event.repository.as_deref()),
        ("target", event.target.as_deref()),
    ];
    for (name, value) in params {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            sd.push_str(&format!(" {name}=\"{}\"", param_value(value)));
        }
    }
    sd.push(']');
    let json = serde_json::to_string(&super::streamed(event)).unwrap_or_default();
    format!(
        "<{pri}>1 {} {} {} {} {} {sd} {json}",
        crate::search::rfc3339(event.time),
        header_field(&settings.hostname, 255),
        header_field(&settings.app_name, 48),
        std::process::id(),
        header_field(&event.kind, 32),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_events::{Actor, Origin};

    #[test]
    fn messages_follow_rfc_5424() {
        let settings = SyslogSettings {
            address: "127.0.0.1:514".parse().unwrap(),
            transport: Transport::Udp,
            facility: 13,
            hostname: "reg 1".into(),
            app_name: "bulwark".into(),
        };
        let mut event = Event::new(
            "login.failure",
            Actor {
                kind: "user".into(),
                name: "a\"b]c\\".into(),
                credential: String::new(),
            },
            Origin::default(),
        )
        .repository("acme/app");
        event.time = 0;
        let text = String::from_utf8(format(&settings, &event)).unwrap();
        let pid = std::process::id();
        assert!(
            text.starts_with(&format!(
                "<108>1 1970-01-01T00:00:00.000Z reg1 bulwark {pid} login.failure \
                 [bulwark@32473 kind=\"login.failure\" actor=\"a\\\"b\\]c\\\\\" actorKind=\"user\" \
                 namespace=\"acme\" repository=\"acme/app\"] {{"
            )),
            "{text}"
        );
    }
}
