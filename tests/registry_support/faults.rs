//! An HTTP/1.1 proxy in front of the real registry that injects faults into
//! chosen requests: connection resets, error statuses, 429 with
//! `Retry-After`, stalls (of the answer, or of its body halfway), and a 401
//! challenge in the middle of a push; a hook may also see and rewrite each
//! request before it is forwarded. It
//! reads each request and response whole (Content-Length or chunked) so
//! kept-alive connections keep working, and forwards everything else as is.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The connection is closed without an answer.
    Reset,
    /// An answer with this status and no body (500, 503).
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// The answer is held back this long, then forwarded.
    Stall(Duration),
    /// The head and half the body are sent, then nothing for this long, then
    /// the connection is closed.
    StallBody(Duration),
    /// The answer is sent chunked, its body followed by this many spaces
    /// (the head of a HEAD request still announces the true size).
    Oversize(u64),
    /// 401 with the registry's Basic challenge, as if the credentials had
    /// expired; the client must authenticate again.
    Unauthorized,
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Reset => "connection reset",
            Fault::Status(500) => "500",
            Fault::Status(503) => "503",
            Fault::Status(_) => "5xx",
            Fault::TooMany => "429 with Retry-After",
            Fault::Stall(_) => "stall",
            Fault::StallBody(_) => "stalled body",
            Fault::Oversize(_) => "oversized body",
            Fault::Unauthorized => "401 mid-push",
        }
    }
}

/// Injects `fault` into requests whose method is `method` and whose path
/// contains `path`: after letting `skip` of them through, into the next
/// `times` of them.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path: String,
    pub skip: usize,
    pub times: usize,
    pub fault: Fault,
}

/// Sees each request ("METHOD", path, raw bytes) before it is forwarded,
/// and may rewrite it.
pub type Hook = dyn Fn(&str, &str, &mut Vec<u8>) + Send + Sync;

struct State {
    hook: Option<Arc<Hook>>,
    rules: Vec<(Rule, usize)>,
    /// (fault kind, "METHOD path") of every injection, in order.
    fired: Vec<(&'static str, String)>,
    /// Padding bytes of oversized bodies the client took.
    padding_sent: u64,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    pub fn start(upstream: u16, rules: Vec<Rule>) -> FaultProxy {
        FaultProxy::start_with_hook(upstream, rules, None)
    }

    /// A proxy whose `hook` sees every forwarded request first.
    pub fn start_with_hook(upstream: u16, rules: Vec<Rule>, hook: Option<Arc<Hook>>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            hook,
            rules: rules.into_iter().map(|r| (r, 0)).collect(),
            fired: Vec::new(),
            padding_sent: 0,
        }));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &st);
                });
            }
        });
        FaultProxy { port, state }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Padding bytes of oversized bodies the clients took so far.
    pub fn padding_sent(&self) -> u64 {
        self.state.lock().unwrap().padding_sent
    }

    /// The injections so far: (fault kind, "METHOD path").
    pub fn fired(&self) -> Vec<(&'static str, String)> {
        self.state.lock().unwrap().fired.clone()
    }
}

/// One HTTP message as raw bytes, with what the proxy needs to know.
pub struct Message {
    pub head: String,
    pub raw: Vec<u8>,
}

impl Message {
    fn first_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Reads a head and, unless `no_body`, the body it announces. None at EOF.
pub fn read_message(
    r: &mut impl BufRead,
    no_body: impl Fn(&str) -> bool,
) -> std::io::Result<Option<Message>> {
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        // Like Go's server, give up on bytes that are not HTTP (a TLS hello
        // from a client trying HTTPS first) instead of waiting for a head.
        if raw.is_empty() && !line.windows(7).any(|w| w == b"HTTP/1.") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not an HTTP message",
            ));
        }
        raw.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    if no_body(&head) {
        return Ok(Some(Message { head, raw }));
    }
    if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            raw.extend_from_slice(&size_line);
            let text = String::from_utf8_lossy(&size_line);
            let size = usize::from_str_radix(text.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut l = Vec::new();
                    r.read_until(b'\n', &mut l)?;
                    raw.extend_from_slice(&l);
                    if l == b"\r\n" || l.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
        }
    } else if let Some(n) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)?;
        raw.extend_from_slice(&body);
    }
    Ok(Some(Message { head, raw }))
}

fn pick(state: &Mutex<State>, method: &str, path: &str) -> Option<Fault> {
    let mut st = state.lock().unwrap();
    let mut chosen = None;
    for (rule, seen) in st.rules.iter_mut() {
        if rule.method != method || !path.contains(&rule.path) {
            continue;
        }
        *seen += 1;
        if chosen.is_none() && *seen > rule.skip && *seen <= rule.skip.saturating_add(rule.times) {
            chosen = Some(rule.fault);
        }
    }
    if let Some(f) = chosen {
        st.fired.push((f.kind(), format!("{method} {path}")));
    }
    chosen
}

fn answer(client: &mut TcpStream, status: u16, extra: &str) -> std::io::Result<()> {
    let body = format!("{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"fault {status}\"}}]}}");
    write!(
        client,
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn serve(client: TcpStream, upstream: u16, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut up: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while let Some(mut req) = read_message(&mut reader, |_| false)? {
        let mut parts = req.first_line().split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let fault = pick(state, &method, &path);
        match fault {
            Some(Fault::Reset) => {
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Status(code)) => {
                answer(&mut client, code, "")?;
                continue;
            }
            Some(Fault::TooMany) => {
                answer(&mut client, 429, "Retry-After: 1\r\n")?;
                continue;
            }
            Some(Fault::Unauthorized) => {
                answer(
                    &mut client,
                    401,
                    "WWW-Authenticate: Basic realm=\"oxport-test\"\r\n",
                )?;
                continue;
            }
            Some(Fault::Stall(d)) => std::thread::sleep(d),
            Some(Fault::StallBody(_)) | Some(Fault::Oversize(_)) | None => {}
        }
        if up.is_none() {
            let s = TcpStream::connect(("127.0.0.1", upstream))?;
            let r = BufReader::new(s.try_clone()?);
            up = Some((s, r));
        }
        let hook = state.lock().unwrap().hook.clone();
        if let Some(h) = hook {
            h(&method, &path, &mut req.raw);
        }
        let stall_body = match fault {
            Some(Fault::StallBody(d)) => Some(d),
            _ => None,
        };
        let (s, r) = up.as_mut().unwrap();
        s.write_all(&req.raw)?;
        let is_head = method == "HEAD";
        let resp = read_message(r, |head| {
            let code = head.split(' ').nth(1).unwrap_or_default();
            is_head || code == "204" || code == "304" || code.starts_with('1')
        })?
        .ok_or_else(|| std::io::Error::other("the registry closed the connection"))?;
        if let Some(d) = stall_body {
            let body = resp.raw.len() - resp.head.len();
            client.write_all(&resp.raw[..resp.head.len() + body / 2])?;
            client.flush()?;
            std::thread::sleep(d);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        if let Some(Fault::Oversize(n)) = fault {
            return oversized(&mut client, &resp, n, state);
        }
        client.write_all(&resp.raw)?;
        if header(&resp.head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            up = None;
        }
    }
    Ok(())
}

/// Sends `resp` chunked with `padding` spaces after its body, counting what
/// the client took; then closes the connection.
fn oversized(
    client: &mut TcpStream,
    resp: &Message,
    padding: u64,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let head: String = resp
        .head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    write!(
        client,
        "{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    let body = &resp.raw[resp.head.len()..];
    write!(client, "{:x}\r\n", body.len())?;
    client.write_all(body)?;
    client.write_all(b"\r\n")?;
    let piece = vec![b' '; 64 << 10];
    let mut left = padding;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        write!(client, "{n:x}\r\n")?;
        client.write_all(&piece[..n])?;
        client.write_all(b"\r\n")?;
        state.lock().unwrap().padding_sent += n as u64;
        left -= n as u64;
    }
    client.write_all(b"0\r\n\r\n")?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}
