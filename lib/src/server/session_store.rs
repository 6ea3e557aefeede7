//! Resumable sessions kept where every server of a deployment can read
//! them (spec 3.14.1): a NATS JetStream key-value bucket, one key per
//! session (its id in hex), so that a client whose server died resumes on
//! another with nothing lost.
//!
//! A record is the session's image (`protocol::v2::session_image`) behind
//! two SHA-256 digests: of the resume token, and of the identity the
//! client proved when it opened the session. The store never holds a
//! token, only what checks one. Every write names the revision it expects
//! (JetStream's compare-and-set), so a server that resumed a session owns
//! its record, and the one that served it before learns it lost it on its
//! next write.
//!
//! The bucket keeps one revision per key and lets a record go `expiry`
//! after its last write: a serving server writes at least that often, so
//! only the sessions of a server that died age out.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;
use subtle::ConstantTimeEq;

use async_nats::jetstream::kv;

use super::kept_sessions::Identity;
use crate::protocol::v2::session_image::SessionImage;
use crate::protocol::v2::{ResumeToken, SessionId};

const RECORD_VERSION: u8 = 1;
const DIGEST_LEN: usize = 32;

/// What the store adds to an image, at most (version and two digests),
/// and room for the image's own fields beside its replay.
const RECORD_OVERHEAD: usize = 1 + 2 * DIGEST_LEN + 16 * 1024;

/// Why a session store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionStoreError {
    /// NATS could not be reached.
    #[error("session store: cannot reach NATS at {addr}: {reason}")]
    Connect {
        /// The address given.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// JetStream refused the bucket (JetStream off in nats-server, or a
    /// bucket of that name with other settings).
    #[error(
        "session store: JetStream bucket {bucket:?}: {reason} (is nats-server running with -js?)"
    )]
    Bucket {
        /// The bucket's name.
        bucket: String,
        /// What JetStream said.
        reason: String,
    },
    /// A session's record could outgrow the largest message NATS takes.
    #[error(
        "session store: a replay buffer of {replay_max_bytes} bytes does not fit in NATS's largest message ({max_payload} bytes); lower the replay buffer"
    )]
    TooLarge {
        /// The replay bound asked for.
        replay_max_bytes: usize,
        /// What the NATS server accepts.
        max_payload: usize,
    },
}

/// A store failed one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreFailure {
    /// The record changed since we last wrote it: another server resumed
    /// the session (or it is gone).
    Lost,
    /// NATS or JetStream did not answer, or refused.
    Unavailable(String),
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreFailure::Lost => f.write_str("the session was taken over by another server"),
            StoreFailure::Unavailable(why) => write!(f, "the session store failed: {why}"),
        }
    }
}

/// A deployment's store of resumable sessions: see the module docs. One
/// per server, shared by its connections (`Arc`), set with
/// [`ServerConfig::session_store`](super::ServerConfig::session_store).
#[derive(Clone)]
pub struct SessionStore {
    kv: kv::Store,
    bucket: String,
    expiry: Duration,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("bucket", &self.bucket)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// A record read back: who may resume it, and the session.
#[derive(Debug)]
pub(crate) struct StoredSession {
    token_digest: [u8; DIGEST_LEN],
    identity_digest: [u8; DIGEST_LEN],
    pub(crate) image: SessionImage,
    /// The revision to name on the next write.
    pub(crate) revision: u64,
}

fn sha256(parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn token_digest(token: &ResumeToken) -> [u8; DIGEST_LEN] {
    sha256(&[b"rust-tcp resume token", &token.0])
}

fn identity_digest(identity: &Identity) -> [u8; DIGEST_LEN] {
    let token = identity.auth_token.as_deref().unwrap_or_default();
    let cert = identity.certificate.as_deref().unwrap_or_default();
    sha256(&[
        b"rust-tcp identity",
        &[
            u8::from(identity.auth_token.is_some()),
            u8::from(identity.certificate.is_some()),
        ],
        token,
        cert,
    ])
}

/// A session's record: the digests, then the image.
pub(crate) fn record(token: &ResumeToken, identity: &Identity, image: &SessionImage) -> Bytes {
    let image = image.encode();
    let mut b = BytesMut::with_capacity(1 + 2 * DIGEST_LEN + image.len());
    b.put_u8(RECORD_VERSION);
    b.put_slice(&token_digest(token));
    b.put_slice(&identity_digest(identity));
    b.put_slice(&image);
    b.freeze()
}

impl StoredSession {
    fn decode(data: &[u8], revision: u64) -> Result<Self, String> {
        let head = 1 + 2 * DIGEST_LEN;
        if data.len() < head || data[0] != RECORD_VERSION {
            return Err("not a session record of this version".into());
        }
        let image = SessionImage::decode(&data[head..]).map_err(|e| e.to_string())?;
        Ok(StoredSession {
            token_digest: data[1..1 + DIGEST_LEN].try_into().expect("32"),
            identity_digest: data[1 + DIGEST_LEN..head].try_into().expect("32"),
            image,
            revision,
        })
    }

    /// Whether `token` and `identity` are the session's, compared in
    /// constant time.
    pub(crate) fn admits(&self, token: &ResumeToken, identity: &Identity) -> bool {
        let token_ok = token_digest(token).ct_eq(&self.token_digest);
        let identity_ok = identity_digest(identity).ct_eq(&self.identity_digest);
        (token_ok & identity_ok).into()
    }
}

fn key(id: SessionId) -> String {
    id.to_string()
}

fn unavailable(e: impl std::fmt::Display) -> StoreFailure {
    StoreFailure::Unavailable(e.to_string())
}

impl SessionStore {
    /// Connects to NATS at `addr` and opens (or creates) the bucket
    /// `bucket`, keeping records for `expiry` after their last write (the
    /// server's longest session expiry). `replay_max_bytes` is the server's
    /// replay bound: it must fit in one NATS message.
    pub async fn connect(
        addr: &str,
        bucket: &str,
        expiry: Duration,
        replay_max_bytes: usize,
    ) -> Result<SessionStore, SessionStoreError> {
        let connect_error = |reason: String| SessionStoreError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let client = async_nats::ConnectOptions::new()
            .name("rust-tcp session store")
            .connection_timeout(Duration::from_secs(5))
            .connect(addr)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let max_payload = client.server_info().max_payload;
        if replay_max_bytes + RECORD_OVERHEAD > max_payload {
            return Err(SessionStoreError::TooLarge {
                replay_max_bytes,
                max_payload,
            });
        }
        let bucket_error = |reason: String| SessionStoreError::Bucket {
            bucket: bucket.to_owned(),
            reason,
        };
        let jetstream = async_nats::jetstream::new(client);
        let kv = match jetstream.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => {
                // The bucket's stream, made as JetStream's key-value layer
                // lays it out (`KV_<bucket>`, subjects `$KV.<bucket>.>`):
                // `create_key_value` itself cannot read the answer of the
                // nats-server that Debian ships (2.9).
                jetstream
                    .create_stream(async_nats::jetstream::stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some("rust-tcp resumable sessions".into()),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        max_age: expiry,
                        max_message_size: i32::try_from(max_payload).unwrap_or(i32::MAX),
                        allow_direct: true,
                        allow_rollup: true,
                        deny_delete: true,
                        discard: async_nats::jetstream::stream::DiscardPolicy::New,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| bucket_error(e.to_string()))?;
                jetstream
                    .get_key_value(bucket)
                    .await
                    .map_err(|e| bucket_error(e.to_string()))?
            }
        };
        Ok(SessionStore {
            kv,
            bucket: bucket.to_owned(),
            expiry,
        })
    }

    /// How often a session's record must be written for it to live.
    pub(crate) fn refresh_every(&self) -> Duration {
        self.expiry / 3
    }

    /// A new session's first record; its revision.
    pub(crate) async fn create(&self, id: SessionId, record: Bytes) -> Result<u64, StoreFailure> {
        self.kv.create(key(id), record).await.map_err(|e| {
            if e.kind() == kv::CreateErrorKind::AlreadyExists {
                StoreFailure::Lost
            } else {
                unavailable(e)
            }
        })
    }

    /// Writes `record` over revision `revision`; the new revision, or
    /// `Lost` if the record changed meanwhile.
    pub(crate) async fn save(
        &self,
        id: SessionId,
        record: Bytes,
        revision: u64,
    ) -> Result<u64, StoreFailure> {
        self.kv
            .update(key(id), record, revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => StoreFailure::Lost,
                _ => unavailable(e),
            })
    }

    /// The session `id`'s record, if there is one. A record that does not
    /// parse is treated as absent (and said in the error).
    pub(crate) async fn load(&self, id: SessionId) -> Result<Option<StoredSession>, StoreFailure> {
        let Some(entry) = self.kv.entry(key(id)).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        StoredSession::decode(&entry.value, entry.revision)
            .map(Some)
            .map_err(StoreFailure::Unavailable)
    }

    /// Like [`SessionStore::load`], but a record written by a server still
    /// serving the session (not detached) is looked at again, every 10 ms
    /// for up to `patience`, until that server records that it lost the
    /// connection; then whatever is there.
    pub(crate) async fn load_detached(
        &self,
        id: SessionId,
        patience: Duration,
    ) -> Result<Option<StoredSession>, StoreFailure> {
        let give_up = tokio::time::Instant::now() + patience;
        loop {
            let stored = self.load(id).await?;
            match &stored {
                Some(s) if !s.image.detached && tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => return Ok(stored),
            }
        }
    }

    /// The session is over: its record goes, if it is still ours
    /// (`revision`).
    pub(crate) async fn delete(&self, id: SessionId, revision: u64) {
        let _ = self
            .kv
            .delete_expect_revision(key(id), Some(revision))
            .await;
    }
}
