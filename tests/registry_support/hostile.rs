//! A hostile registry: a loopback HTTP/1.1 server whose every answer the
//! test chooses. It exists for behaviour a real registry cannot be made to
//! show on purpose: an upload `Range` that never advances, or an upload
//! session lost on every PUT. It counts the requests and the body bytes it
//! received, reading (and dropping) every body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One request as received (its body is counted, not kept).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to one request.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

pub struct Hostile {
    pub port: u16,
    log: Arc<Mutex<Vec<Req>>>,
    bytes_in: Arc<AtomicU64>,
}

impl Hostile {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (l, b) = (Arc::clone(&log), Arc::clone(&bytes_in));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (l, b, h) = (Arc::clone(&l), Arc::clone(&b), Arc::clone(&handler));
                std::thread::spawn(move || {
                    let _ = serve(conn, &l, &b, &*h);
                });
            }
        });
        Hostile {
            port,
            log,
            bytes_in,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Body bytes received so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::SeqCst)
    }

    /// How many requests had this method and a path containing `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path))
            .count()
    }
}

fn serve(
    conn: TcpStream,
    log: &Mutex<Vec<Req>>,
    bytes_in: &AtomicU64,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first)? == 0 {
            return Ok(());
        }
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut req = Req {
            method,
            path,
            headers,
            body_len: 0,
        };
        let len: u64 = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut left = len;
        let mut buf = vec![0u8; 64 << 10];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(());
            }
            left -= n as u64;
            bytes_in.fetch_add(n as u64, Ordering::SeqCst);
        }
        req.body_len = len;
        let reply = handler(&req);
        log.lock().unwrap().push(req);
        let mut head = format!("HTTP/1.1 {} Hostile\r\nContent-Length: 0\r\n", reply.status);
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes())?;
    }
}
