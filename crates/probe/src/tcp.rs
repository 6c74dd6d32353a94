//! Connecting, and the `tcp` prober: connect, optionally send a line and
//! expect an answer line matching a regular expression.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::check::Check;
use crate::outcome::{Failure, Reason};

/// The longest answer line read (a peer that never sends a newline cannot fill memory).
const MAX_LINE: usize = 64 * 1024;

/// Resolves the check's host and connects to the first address that answers.
pub async fn connect(check: &Check) -> Result<TcpStream, Failure> {
    let host = check.endpoint.host();
    let port = check.endpoint.port();
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| Failure::new(Reason::Dns, format!("cannot resolve {host}: {error}")))?
        .collect();
    if addresses.is_empty() {
        return Err(Failure::new(Reason::Dns, format!("{host} resolves to no address")));
    }
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last = Some((address, error)),
        }
    }
    let (address, error) = last.expect("at least one address was tried");
    Err(connect_failure(&address.to_string(), &error))
}

/// The failure of a connection attempt to `address`.
pub fn connect_failure(address: &str, error: &std::io::Error) -> Failure {
    let reason = match error.kind() {
        std::io::ErrorKind::ConnectionRefused => Reason::Refused,
        _ => Reason::Connect,
    };
    Failure::new(reason, format!("cannot connect to {address}: {error}"))
}

/// Reads one line (without its line ending); an empty answer is an error.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Result<String, Failure> {
    let mut line = Vec::new();
    let mut limited = reader.take(MAX_LINE as u64);
    let read = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|error| Failure::new(Reason::Protocol, format!("cannot read the answer: {error}")))?;
    if read == 0 {
        return Err(Failure::new(Reason::Protocol, "the peer closed the connection without answering"));
    }
    while line.last().is_some_and(|byte| *byte == b'\n' || *byte == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// The `tcp` prober.
pub async fn probe(check: &Check) -> Result<(), Failure> {
    let stream = connect(check).await?;
    let options = &check.options;
    if options.send.is_none() && options.expect.is_none() {
        return Ok(());
    }
    let mut stream = BufReader::new(stream);
    if let Some(send) = &options.send {
        let mut line = send.clone().into_bytes();
        line.push(b'\n');
        stream
            .get_mut()
            .write_all(&line)
            .await
            .map_err(|error| Failure::new(Reason::Connect, format!("cannot send: {error}")))?;
    }
    if let Some(expect) = &options.expect {
        let pattern = regex::Regex::new(expect)
            .map_err(|error| Failure::new(Reason::Config, format!("expect is not a regular expression: {error}")))?;
        let line = read_line(&mut stream).await?;
        if !pattern.is_match(&line) {
            return Err(Failure::new(Reason::Expect, format!("answer {line:?} does not match {expect:?}")));
        }
    }
    Ok(())
}
