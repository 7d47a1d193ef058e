//! Relays a registry's request for credentials from a running export to the
//! export's caller and the answer back (`ExportEvent.auth`, `AnswerAuth`).
//!
//! The export stream is server-streaming, so the answer comes on a second
//! call. What ties the two together is the challenge id: 128 random bits
//! that only the caller of that export has seen, so another client of a
//! shared server cannot answer (or read) it. Answers go straight into the
//! export that waits for them and are never stored anywhere else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Status;

use crate::proto::{self, export_event::Event, ExportEvent};
use crate::registry::caller::{AnswerFuture, AskCaller, AuthAnswer, AuthQuestion};

use super::output::EventSender;

/// How long an export waits for an answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest error text a caller's answer may carry.
const MAX_ERROR_TEXT: usize = 1024;

type Answer = Result<AuthAnswer, String>;

/// The challenges waiting for an answer, across all exports.
#[derive(Default)]
pub struct PendingAnswers {
    waiting: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Answer>>>,
}

impl PendingAnswers {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, tokio::sync::oneshot::Sender<Answer>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self) -> Result<(String, tokio::sync::oneshot::Receiver<Answer>), String> {
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(|e| format!("no random id: {e}"))?;
        let id = hex::encode(raw);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.lock().insert(id.clone(), tx);
        Ok((id, rx))
    }

    /// Hands an answer to the export waiting under `id`; false when none waits.
    pub fn answer(&self, id: &str, answer: Answer) -> bool {
        match self.lock().remove(id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many challenges wait (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The answer an `AnswerAuth` request carries.
pub fn answer_of(r: &proto::AnswerAuthRequest) -> Answer {
    if !r.error.is_empty() {
        let mut text = r.error.clone();
        if text.len() > MAX_ERROR_TEXT {
            let mut cut = MAX_ERROR_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Err(text)
    } else if !r.token.is_empty() {
        Ok(AuthAnswer::Token(r.token.clone()))
    } else if !r.username.is_empty() || !r.secret.is_empty() {
        Ok(AuthAnswer::Basic {
            username: r.username.clone(),
            secret: r.secret.clone(),
        })
    } else {
        Ok(AuthAnswer::Anonymous)
    }
}

/// The NOT_FOUND of an answer nobody waits for.
pub fn not_waiting() -> Status {
    Status::not_found(
        "no export waits for credentials under this id (answered already, timed out, or the export ended)",
    )
}

/// Asks the caller of one export, on its response stream.
pub struct StreamAsker {
    pub pending: Arc<PendingAnswers>,
    pub events: EventSender,
    pub request_id: String,
}

/// Removes a challenge when its wait ends, however it ends.
struct Forget(Arc<PendingAnswers>, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.forget(&self.1);
    }
}

impl AskCaller for StreamAsker {
    fn ask(&self, q: AuthQuestion) -> AnswerFuture {
        let pending = Arc::clone(&self.pending);
        let events = self.events.clone();
        let request_id = self.request_id.clone();
        Box::pin(async move {
            let (id, rx) = pending.register()?;
            let _forget = Forget(Arc::clone(&pending), id.clone());
            let challenge = ExportEvent {
                request_id,
                event: Some(Event::Auth(proto::AuthChallenge {
                    id,
                    host: q.host,
                    realm: q.realm,
                    service: q.service,
                    scopes: q.scopes,
                })),
            };
            let waited = tokio::time::timeout(ANSWER_TIMEOUT, async {
                events
                    .send(Ok(challenge))
                    .await
                    .map_err(|_| "the builder went away".to_string())?;
                rx.await.map_err(|_| "the builder went away".to_string())?
            })
            .await;
            waited.unwrap_or_else(|_| {
                Err(format!(
                    "the builder did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                ))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_what_they_carry() {
        let mut r = proto::AnswerAuthRequest::default();
        assert_eq!(answer_of(&r), Ok(AuthAnswer::Anonymous));
        r.username = "u".into();
        r.secret = "s".into();
        assert!(matches!(answer_of(&r), Ok(AuthAnswer::Basic { .. })));
        r.token = "t".into();
        assert_eq!(answer_of(&r), Ok(AuthAnswer::Token("t".into())));
        r.error = "é".repeat(1000);
        let text = answer_of(&r).unwrap_err();
        assert!(text.len() <= MAX_ERROR_TEXT && text.starts_with('é'));
    }

    #[tokio::test]
    async fn a_challenge_reaches_the_stream_and_its_answer_the_export() {
        let pending = Arc::new(PendingAnswers::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let asker = StreamAsker {
            pending: Arc::clone(&pending),
            events: tx,
            request_id: "r1".into(),
        };
        let q = AuthQuestion {
            host: "registry.example:5000".into(),
            realm: "https://auth.example/token".into(),
            service: "registry".into(),
            scopes: vec!["repository:a:pull,push".into()],
        };
        let waiting = tokio::spawn(asker.ask(q));
        let ev = rx.recv().await.unwrap().unwrap();
        let Some(Event::Auth(c)) = ev.event else {
            panic!("not a challenge: {ev:?}")
        };
        assert_eq!((c.host.as_str(), c.id.len()), ("registry.example:5000", 32));
        assert!(!pending.answer("0".repeat(32).as_str(), Ok(AuthAnswer::Anonymous)));
        assert!(pending.answer(&c.id, Ok(AuthAnswer::Token("tok".into()))));
        assert_eq!(waiting.await.unwrap(), Ok(AuthAnswer::Token("tok".into())));
        assert!(pending.is_empty(), "the answered challenge is gone");
        assert!(
            !pending.answer(&c.id, Ok(AuthAnswer::Anonymous)),
            "answered twice"
        );
    }

    #[tokio::test]
    async fn a_caller_that_leaves_ends_the_wait() {
        let pending = Arc::new(PendingAnswers::default());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        drop(rx);
        let asker = StreamAsker {
            pending: Arc::clone(&pending),
            events: tx,
            request_id: String::new(),
        };
        let q = AuthQuestion {
            host: "h".into(),
            realm: String::new(),
            service: String::new(),
            scopes: vec![],
        };
        assert_eq!(asker.ask(q).await, Err("the builder went away".to_string()));
        assert!(pending.is_empty());
    }
}
