//! The `smtp` prober: the banner (220), EHLO (250), STARTTLS (by default;
//! the upgraded session's chain is recorded as for `tls`), EHLO again, and
//! optionally AUTH (PLAIN, else LOGIN) with the user name and password read
//! from their files at each check; QUIT at the end. No mail is sent.
//!
//! Written here rather than through `lettre`: the check needs each step's
//! reply (which step failed is the failure reason), not a mail transport.
//! Replies follow RFC 5321 section 4.2: `NNN-text` lines continue, `NNN text`
//! ends the reply.

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::check::Check;
use crate::outcome::{Failure, Outcome, Reason};

/// The most lines one reply may have.
const MAX_REPLY_LINES: usize = 100;

/// One SMTP reply: the code and its lines' text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

/// Parses one reply line into (code, is the last line, text).
pub fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let code = line.get(..3)?.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        _ => None,
    }
}

struct Session<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn read_reply(&mut self, step: &str) -> Result<Reply, Failure> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let read =
                (&mut self.stream).take(4096).read_until(b'\n', &mut raw).await.map_err(|error| {
                    Failure::new(Reason::Protocol, format!("{step}: cannot read the reply: {error}"))
                })?;
            if read == 0 {
                return Err(Failure::new(Reason::Protocol, format!("{step}: the server closed the connection")));
            }
            let line = String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_owned();
            let Some((code, last, text)) = parse_reply_line(&line) else {
                return Err(Failure::new(Reason::Protocol, format!("{step}: {line:?} is not an SMTP reply")));
            };
            lines.push(text.to_owned());
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(Failure::new(Reason::Protocol, format!("{step}: the reply does not end")));
            }
        }
    }

    async fn command(&mut self, step: &str, line: &str) -> Result<Reply, Failure> {
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|error| Failure::new(Reason::Connect, format!("{step}: cannot send: {error}")))?;
        stream.flush().await.map_err(|error| Failure::new(Reason::Connect, format!("{step}: cannot send: {error}")))?;
        self.read_reply(step).await
    }

    /// Sends `line` and requires `code`; `reason` is the failure otherwise.
    async fn expect(&mut self, step: &str, line: &str, code: u16, reason: Reason) -> Result<Reply, Failure> {
        let reply = self.command(step, line).await?;
        if reply.code != code {
            return Err(Failure::new(reason, format!("{step}: {} {}", reply.code, reply.text())));
        }
        Ok(reply)
    }
}

/// The extensions an EHLO reply announces (upper case keywords with parameters).
fn extensions(reply: &Reply) -> Vec<String> {
    reply.lines.iter().skip(1).map(|line| line.to_ascii_uppercase()).collect()
}

async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    ehlo: &str,
) -> Result<Vec<String>, Failure> {
    let reply = session.expect("EHLO", &format!("EHLO {ehlo}"), 250, Reason::Protocol).await?;
    Ok(extensions(&reply))
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut Session<S>,
    extensions: &[String],
    username: &str,
    password: &str,
) -> Result<(), Failure> {
    let mechanisms: Vec<&str> = extensions
        .iter()
        .find_map(|extension| extension.strip_prefix("AUTH ").or_else(|| extension.strip_prefix("AUTH=")))
        .map(|list| list.split_whitespace().collect())
        .unwrap_or_default();
    let base64 = base64::engine::general_purpose::STANDARD;
    let reply = if mechanisms.contains(&"PLAIN") {
        let token = base64.encode(format!("\0{username}\0{password}"));
        session.command("AUTH PLAIN", &format!("AUTH PLAIN {token}")).await?
    } else if mechanisms.contains(&"LOGIN") {
        session.expect("AUTH LOGIN", "AUTH LOGIN", 334, Reason::Auth).await?;
        session.expect("AUTH LOGIN", &base64.encode(username), 334, Reason::Auth).await?;
        session.command("AUTH LOGIN", &base64.encode(password)).await?
    } else {
        return Err(Failure::new(
            Reason::Auth,
            format!("the server offers no AUTH PLAIN or LOGIN (offers: {})", mechanisms.join(" ")),
        ));
    };
    if reply.code != 235 {
        return Err(Failure::new(Reason::Auth, format!("AUTH: {} {}", reply.code, reply.text())));
    }
    Ok(())
}

async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    mut session: Session<S>,
    extensions: &[String],
    credentials: Option<(String, String)>,
) -> Result<(), Failure> {
    if let Some((username, password)) = credentials {
        authenticate(&mut session, extensions, &username, &password).await?;
    }
    // A server that drops the connection at QUIT has still passed every step.
    let _ = session.command("QUIT", "QUIT").await;
    Ok(())
}

/// The `smtp` prober.
pub async fn probe(check: &Check, outcome: &mut Outcome) -> Result<(), Failure> {
    let options = &check.options;
    let credentials = match (&options.username_file, &options.password_file) {
        (Some(username), Some(password)) => {
            Some((check.read_secret("username_file", username)?, check.read_secret("password_file", password)?))
        }
        _ => None,
    };
    let ehlo = options.ehlo.clone().unwrap_or_else(|| "alertbook".to_owned());
    let stream = crate::tcp::connect(check).await?;
    let mut session = Session { stream: BufReader::new(stream) };
    let banner = session.read_reply("banner").await?;
    if banner.code != 220 {
        return Err(Failure::new(Reason::Protocol, format!("banner: {} {}", banner.code, banner.text())));
    }
    let extensions = greet(&mut session, &ehlo).await?;
    if !options.starttls.unwrap_or(true) {
        return finish(session, &extensions, credentials).await;
    }
    if !extensions.iter().any(|extension| extension == "STARTTLS") {
        return Err(Failure::new(Reason::Tls, "the server does not offer STARTTLS"));
    }
    session.expect("STARTTLS", "STARTTLS", 220, Reason::Tls).await?;
    let (config, verifier) = crate::tls::client_config(check)?;
    let name = crate::tls::server_name(check)?;
    let plain = session.stream.into_inner();
    let upgraded = crate::tls::handshake(plain, config, name, &verifier).await;
    outcome.earliest_cert_expiry = verifier.take().earliest_expiry();
    let mut session = Session { stream: BufReader::new(upgraded?) };
    let extensions = greet(&mut session, &ehlo).await?;
    finish(session, &extensions, credentials).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_continue_with_a_dash() {
        assert_eq!(parse_reply_line("250-smtp.example.com"), Some((250, false, "smtp.example.com")));
        assert_eq!(parse_reply_line("250 AUTH PLAIN LOGIN"), Some((250, true, "AUTH PLAIN LOGIN")));
        assert_eq!(parse_reply_line("220"), Some((220, true, "")));
        assert_eq!(parse_reply_line("hello"), None);
        assert_eq!(parse_reply_line("25x ok"), None);
    }
}
