//! A test double of a registry that implements the referrers API: it answers
//! `OCI-Subject` on a manifest PUT with a subject, and serves
//! `GET /v2/<name>/referrers/<digest>`. It exists because no registry with
//! the referrers API can be installed on the test machines. It keeps
//! everything in memory and speaks just enough HTTP/1.1 for oxport's client.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::sha256;

#[derive(Default)]
pub struct State {
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Repository -> blob digests it holds.
    pub repo_blobs: BTreeMap<String, BTreeSet<String>>,
    /// Manifest digest -> (media type, bytes).
    pub manifests: BTreeMap<String, (String, Vec<u8>)>,
    /// Repository -> tag -> digest.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// (repository, subject digest) -> referrer manifest digests.
    pub referrers: BTreeMap<(String, String), Vec<String>>,
    uploads: BTreeMap<String, Vec<u8>>,
    next_upload: u64,
    /// Token auth, when on: the only credentials the token endpoint accepts.
    pub token_auth: Option<TokenAuth>,
    /// "METHOD path" of every request, in order.
    pub log: Vec<String>,
}

/// Bearer token auth as a token server and a registry do it together: `/v2/`
/// answers 401 with a `Bearer` challenge, `/token` trades Basic credentials
/// for a token, and each token is good for a few requests only, so that a
/// client has to renew it in the middle of a push.
pub struct TokenAuth {
    pub basic: String,
    pub uses_per_token: u32,
    /// Token -> requests left.
    pub live: BTreeMap<String, u32>,
    pub issued: u32,
    /// The `scope` of every token request.
    pub scopes: Vec<String>,
}

pub struct FakeRegistry {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        FakeRegistry { port, state }
    }

    /// The same registry, behind Bearer token auth for `user:password`.
    pub fn start_with_token(user: &str, password: &str, uses_per_token: u32) -> FakeRegistry {
        use base64::Engine as _;
        let fake = FakeRegistry::start();
        fake.state.lock().unwrap().token_auth = Some(TokenAuth {
            basic: base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
            uses_per_token,
            live: BTreeMap::new(),
            issued: 0,
            scopes: Vec::new(),
        });
        fake
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.tags
            .get(repo)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }
}

struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| v.as_str())
    }
    fn param(&self, k: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (a, b) = kv.split_once('=')?;
            (a == k).then(|| b.replace("%3A", ":").replace("%2F", "/"))
        })
    }
}

fn read_req(r: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Req {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    })
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn answer(status: u16) -> Answer {
    (status, Vec::new(), Vec::new())
}

fn serve(conn: TcpStream, st: &Mutex<State>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(req) = read_req(&mut r) {
        let (status, headers, body) = handle(&req, &mut st.lock().unwrap());
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let payload = if req.method == "HEAD" {
            Vec::new()
        } else {
            body
        };
        // One write per answer: a head and a body in two small writes wait
        // for the client's delayed ACK (Nagle), 40 ms per request.
        let mut whole = head.into_bytes();
        whole.extend_from_slice(&payload);
        if w.write_all(&whole).is_err() {
            return;
        }
        if req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

/// Token auth: `None` lets the request through, `Some` is the answer.
fn authorize(req: &Req, st: &mut State, host: &str) -> Option<Answer> {
    let auth = st.token_auth.as_mut()?;
    if req.path == "/token" {
        let given = req.header("authorization").unwrap_or_default();
        if given != format!("Basic {}", auth.basic) {
            return Some(answer(401));
        }
        auth.scopes.push(req.param("scope").unwrap_or_default());
        auth.issued += 1;
        let token = format!("token-{}", auth.issued);
        auth.live.insert(token.clone(), auth.uses_per_token);
        let body = serde_json::json!({"token": token, "expires_in": 300});
        return Some((200, Vec::new(), body.to_string().into_bytes()));
    }
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    match auth.live.get_mut(token) {
        Some(left) if *left > 0 => {
            *left -= 1;
            None
        }
        _ => {
            let name = req
                .path
                .strip_prefix("/v2/")
                .and_then(|r| r.split("/blobs/").next())
                .and_then(|r| r.split("/manifests/").next())
                .and_then(|r| r.split("/tags/").next())
                .and_then(|r| r.split("/referrers/").next())
                .unwrap_or_default()
                .to_string();
            let challenge = format!(
                "Bearer realm=\"http://{host}/token\",service=\"fake-registry\",scope=\"repository:{name}:pull,push\""
            );
            Some((
                401,
                vec![("WWW-Authenticate".into(), challenge)],
                Vec::new(),
            ))
        }
    }
}

fn handle(req: &Req, st: &mut State) -> Answer {
    st.log.push(format!("{} {}", req.method, req.path));
    let host = req.header("host").unwrap_or_default().to_string();
    if let Some(a) = authorize(req, st, &host) {
        return a;
    }
    let Some(rest) = req.path.strip_prefix("/v2/") else {
        return answer(404);
    };
    if rest.is_empty() {
        return (200, Vec::new(), b"{}".to_vec());
    }
    // <name>/<kind>/<tail>, where name may hold slashes.
    for kind in [
        "/blobs/uploads/",
        "/blobs/",
        "/manifests/",
        "/referrers/",
        "/tags/list",
    ] {
        if let Some(i) = rest.find(kind) {
            let (name, tail) = (&rest[..i], &rest[i + kind.len()..]);
            return match kind {
                "/blobs/uploads/" => uploads(req, st, name, tail),
                "/blobs/" => blobs(req, st, name, tail),
                "/manifests/" => manifests(req, st, name, tail),
                "/referrers/" => referrers(st, name, tail),
                _ => {
                    let tags: Vec<String> = st
                        .tags
                        .get(name)
                        .map(|t| t.keys().cloned().collect())
                        .unwrap_or_default();
                    let body = serde_json::json!({"name": name, "tags": tags});
                    (200, Vec::new(), body.to_string().into_bytes())
                }
            };
        }
    }
    answer(404)
}

fn blobs(_req: &Req, st: &mut State, name: &str, digest: &str) -> Answer {
    let has = st.repo_blobs.get(name).is_some_and(|s| s.contains(digest));
    if !has {
        return answer(404);
    }
    // HEAD answers get the body's Content-Length; `serve` leaves the body out.
    let body = st.blobs[digest].clone();
    (
        200,
        vec![("Docker-Content-Digest".into(), digest.into())],
        body,
    )
}

fn uploads(req: &Req, st: &mut State, name: &str, id: &str) -> Answer {
    if req.method == "POST" {
        if let (Some(d), Some(from)) = (req.param("mount"), req.param("from")) {
            if st.repo_blobs.get(&from).is_some_and(|s| s.contains(&d)) {
                st.repo_blobs.entry(name.into()).or_default().insert(d);
                return answer(201);
            }
        }
        st.next_upload += 1;
        let id = st.next_upload.to_string();
        st.uploads.insert(id.clone(), Vec::new());
        return (
            202,
            vec![("Location".into(), format!("/v2/{name}/blobs/uploads/{id}"))],
            Vec::new(),
        );
    }
    let Some(buf) = st.uploads.get_mut(id) else {
        return answer(404);
    };
    buf.extend_from_slice(&req.body);
    let range = (
        "Range".to_string(),
        format!("0-{}", buf.len().saturating_sub(1)),
    );
    match req.method.as_str() {
        "PATCH" => (
            202,
            vec![
                ("Location".into(), format!("/v2/{name}/blobs/uploads/{id}")),
                range,
            ],
            Vec::new(),
        ),
        "GET" => (204, vec![range], Vec::new()),
        "PUT" => {
            let data = st.uploads.remove(id).unwrap();
            let want = req.param("digest").unwrap_or_default();
            if sha256(&data) != want {
                return (
                    400,
                    Vec::new(),
                    br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#.to_vec(),
                );
            }
            st.blobs.insert(want.clone(), data);
            st.repo_blobs.entry(name.into()).or_default().insert(want);
            answer(201)
        }
        _ => answer(405),
    }
}

fn manifests(req: &Req, st: &mut State, name: &str, reference: &str) -> Answer {
    match req.method.as_str() {
        "PUT" => {
            let digest = sha256(&req.body);
            let media_type = req.header("content-type").unwrap_or_default().to_string();
            st.manifests
                .insert(digest.clone(), (media_type, req.body.clone()));
            if !reference.starts_with("sha256:") {
                st.tags
                    .entry(name.into())
                    .or_default()
                    .insert(reference.into(), digest.clone());
            }
            let mut headers = vec![("Docker-Content-Digest".to_string(), digest.clone())];
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if let Some(subject) = v.pointer("/subject/digest").and_then(|s| s.as_str()) {
                let list = st
                    .referrers
                    .entry((name.to_string(), subject.to_string()))
                    .or_default();
                if !list.contains(&digest) {
                    list.push(digest.clone());
                }
                headers.push(("OCI-Subject".into(), subject.into()));
            }
            (201, headers, Vec::new())
        }
        "GET" | "HEAD" => {
            let digest = if reference.starts_with("sha256:") {
                reference.to_string()
            } else {
                match st.tags.get(name).and_then(|t| t.get(reference)) {
                    Some(d) => d.clone(),
                    None => return answer(404),
                }
            };
            match st.manifests.get(&digest) {
                Some((mt, bytes)) => (
                    200,
                    vec![
                        ("Content-Type".into(), mt.clone()),
                        ("Docker-Content-Digest".into(), digest),
                    ],
                    bytes.clone(),
                ),
                None => answer(404),
            }
        }
        _ => answer(405),
    }
}

fn referrers(st: &State, name: &str, subject: &str) -> Answer {
    let mut list = Vec::new();
    let key = (name.to_string(), subject.to_string());
    for d in st.referrers.get(&key).into_iter().flatten() {
        let (mt, bytes) = &st.manifests[d];
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        let mut desc = serde_json::json!({"mediaType": mt, "digest": d, "size": bytes.len()});
        if let Some(at) = v.get("artifactType") {
            desc["artifactType"] = at.clone();
        }
        if let Some(a) = v.get("annotations") {
            desc["annotations"] = a.clone();
        }
        list.push(desc);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": list,
    });
    (
        200,
        vec![(
            "Content-Type".into(),
            "application/vnd.oci.image.index.v1+json".into(),
        )],
        index.to_string().into_bytes(),
    )
}
