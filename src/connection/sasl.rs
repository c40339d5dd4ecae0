//! SASL mechanisms as sans-IO steps: PLAIN (RFC 4616), SCRAM-SHA-256/512
//! (RFC 5802, RFC 7677) and OAUTHBEARER (RFC 7628, KIP-255).
//!
//! A mechanism produces the client's messages and checks the server's; carrying them
//! in SaslAuthenticate requests is the [`Connection`](super::Connection)'s job. Nothing
//! here draws randomness: the SCRAM client nonce is supplied by the caller, so a test
//! can replay a transcript byte for byte.
//!
//! The SCRAM client against the RFC 7677 test vector:
//!
//! ```
//! use kafka_sansio::connection::sasl::{ScramClient, ScramHash};
//!
//! let mut scram = ScramClient::new(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
//! assert_eq!(scram.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
//! let client_final = scram
//!     .handle_server_first(
//!         b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
//!     )
//!     .unwrap();
//! assert_eq!(
//!     client_final,
//!     b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
//! );
//! scram
//!     .handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
//!     .unwrap();
//! ```

use crate::scram::{ScramKeys, auth_message, escape_username};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Fewest PBKDF2 iterations accepted from a server, as Kafka's own brokers require;
/// fewer would let a man in the middle cheapen an offline attack on the password.
pub const SCRAM_MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations accepted, so a hostile server cannot pin the CPU.
pub const SCRAM_MAX_ITERATIONS: u32 = 1_000_000;

/// A SASL mechanism this crate can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// `PLAIN`: user name and password in the clear (use only over TLS).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`: a bearer token from [`SaslConfig::oauth`].
    OAuthBearer,
}

impl SaslMechanism {
    /// The name sent in SaslHandshake.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// What a connection needs to authenticate.
///
/// The nonce is used only by SCRAM; it must be fresh and unpredictable for every
/// connection in production (the runtime adapters draw it from the OS), and may be
/// fixed in tests. A re-authentication on the same connection (KIP-368) appends a
/// counter to it, so no exchange repeats a client nonce.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::connection::sasl::{OAuthToken, OAuthTokenProvider, SaslConfig, SaslMechanism};
///
/// let scram = SaslConfig::new(SaslMechanism::ScramSha512, "alice", "s3cret");
/// assert_eq!(scram.mechanism.name(), "SCRAM-SHA-512");
/// // OAUTHBEARER: tokens come from a callback (an identity provider, a file, ...).
/// let provider = OAuthTokenProvider::new(|| Ok(OAuthToken::new("eyJhbGciOi...", Duration::from_secs(3600))));
/// let oauth = SaslConfig::oauth_bearer(provider);
/// assert_eq!(oauth.mechanism, SaslMechanism::OAuthBearer);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// Which mechanism to run.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// SCRAM client nonce: printable ASCII without `,`.
    pub nonce: String,
    /// OAUTHBEARER's token source.
    pub oauth: Option<OAuthTokenProvider>,
}

impl SaslConfig {
    /// PLAIN or SCRAM credentials (the nonce is left for the runtime adapter to draw).
    #[must_use]
    pub fn new(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            mechanism,
            username: username.into(),
            password: password.into(),
            nonce: String::new(),
            oauth: None,
        }
    }

    /// OAUTHBEARER with tokens from `provider`.
    #[must_use]
    pub fn oauth_bearer(provider: OAuthTokenProvider) -> Self {
        Self {
            oauth: Some(provider),
            ..Self::new(SaslMechanism::OAuthBearer, "", "")
        }
    }
}

/// A bearer token for OAUTHBEARER.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The token itself (a JWT, usually).
    pub value: String,
    /// How long it stays valid from when the provider returned it.
    pub lifetime: std::time::Duration,
    /// SASL extensions sent with it (KIP-342), `key=value` pairs.
    pub extensions: Vec<(String, String)>,
}

impl OAuthToken {
    /// A token valid for `lifetime`, without extensions.
    #[must_use]
    pub fn new(value: impl Into<String>, lifetime: std::time::Duration) -> Self {
        Self {
            value: value.into(),
            lifetime,
            extensions: Vec::new(),
        }
    }
}

impl std::fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthToken")
            .field("value", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("extensions", &self.extensions)
            .finish()
    }
}

type TokenCallback = dyn Fn() -> Result<OAuthToken, String> + Send + Sync;

/// Where OAUTHBEARER tokens come from: a callback, and a cache shared by every
/// connection that holds a token until 80 % of its lifetime has passed, so a token is
/// refreshed before it expires (new connections and KIP-368 re-authentications then
/// get the fresh one). The callback runs inside the state machine: it should return
/// quickly (hand it a token fetched elsewhere if fetching is slow).
#[derive(Clone)]
pub struct OAuthTokenProvider {
    inner: std::sync::Arc<ProviderInner>,
}

struct ProviderInner {
    callback: Box<TokenCallback>,
    cache: std::sync::Mutex<Option<(OAuthToken, std::time::Instant)>>,
}

impl OAuthTokenProvider {
    /// A provider calling `callback` whenever it needs a fresh token.
    pub fn new(callback: impl Fn() -> Result<OAuthToken, String> + Send + Sync + 'static) -> Self {
        Self {
            inner: std::sync::Arc::new(ProviderInner {
                callback: Box::new(callback),
                cache: std::sync::Mutex::new(None),
            }),
        }
    }

    /// A token valid at `now`: the cached one until 80 % of its lifetime, then a new
    /// one from the callback.
    ///
    /// # Errors
    /// The callback failed.
    pub fn token(&self, now: std::time::Instant) -> Result<OAuthToken, SaslError> {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, at)) = cache.as_ref()
            && now < *at + token.lifetime.mul_f64(0.8)
        {
            return Ok(token.clone());
        }
        let token = (self.inner.callback)().map_err(SaslError::TokenProvider)?;
        *cache = Some((token.clone(), now));
        Ok(token)
    }
}

impl PartialEq for OAuthTokenProvider {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for OAuthTokenProvider {}

impl std::fmt::Debug for OAuthTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuthTokenProvider")
    }
}

/// The OAUTHBEARER client's first message (RFC 7628): the GS2 header, the bearer
/// token and any extensions.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::connection::sasl::{OAuthToken, oauth_bearer_message};
/// let mut token = OAuthToken::new("abc", Duration::from_secs(60));
/// token.extensions.push(("traceId".into(), "7".into()));
/// assert_eq!(oauth_bearer_message(&token), b"n,,\x01auth=Bearer abc\x01traceId=7\x01\x01");
/// ```
#[must_use]
pub fn oauth_bearer_message(token: &OAuthToken) -> Vec<u8> {
    let mut m = format!("n,,\x01auth=Bearer {}", token.value);
    for (k, v) in &token.extensions {
        m.push('\x01');
        m.push_str(k);
        m.push('=');
        m.push_str(v);
    }
    m.push_str("\x01\x01");
    m.into_bytes()
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Why a SASL exchange failed on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The server's message is not valid SCRAM syntax.
    #[error("malformed SCRAM server message: {0}")]
    Malformed(&'static str),
    /// The server's nonce does not extend the client's.
    #[error("server nonce does not start with the client nonce")]
    NonceMismatch,
    /// The server asked for an iteration count outside the accepted bounds.
    #[error("iteration count {0} outside {SCRAM_MIN_ITERATIONS}..={SCRAM_MAX_ITERATIONS}")]
    Iterations(u32),
    /// The server reported an error in its final message (`e=`).
    #[error("server rejected authentication: {0}")]
    ServerError(String),
    /// The server's signature is wrong: it does not know the password.
    #[error("server signature does not verify; the server may be an impostor")]
    BadServerSignature,
    /// A message arrived when the exchange did not expect one.
    #[error("unexpected SASL message in state {0}")]
    UnexpectedMessage(&'static str),
    /// The client nonce contains a character SCRAM forbids.
    #[error("client nonce must be non-empty printable ASCII without ','")]
    BadNonce,
    /// OAUTHBEARER without a token provider, or the provider failed.
    #[error("OAUTHBEARER token: {0}")]
    TokenProvider(String),
}

pub use crate::scram::ScramHash;

/// The PLAIN mechanism's only message: `authzid NUL authcid NUL password`, with an
/// empty authorization identity.
///
/// ```
/// assert_eq!(kafka_sansio::connection::sasl::plain_message("alice", "s3cret"), b"\0alice\0s3cret");
/// ```
#[must_use]
pub fn plain_message(username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + username.len() + password.len());
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

#[derive(Debug, Clone)]
enum ScramState {
    Initial,
    SentFirst,
    SentFinal {
        keys: ScramKeys,
        auth_message: Vec<u8>,
    },
    Done,
    Failed,
}

impl ScramState {
    fn name(&self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::SentFirst => "sent client-first",
            Self::SentFinal { .. } => "sent client-final",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// The client side of a SCRAM exchange (RFC 5802), without channel binding.
///
/// Call [`client_first`](Self::client_first), send it, feed the server's reply to
/// [`handle_server_first`](Self::handle_server_first), send what it returns, and feed
/// the server's last message to [`handle_server_final`](Self::handle_server_final),
/// which verifies that the server knows the password too. See the [module
/// docs](self) for a full transcript.
#[derive(Clone)]
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    password: String,
    nonce: String,
    state: ScramState,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .field("username", &self.username)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client for `username`/`password` using `nonce` as its part of the nonce.
    #[must_use]
    pub fn new(hash: ScramHash, username: &str, password: &str, nonce: &str) -> Self {
        Self {
            hash,
            username: username.to_owned(),
            password: password.to_owned(),
            nonce: nonce.to_owned(),
            state: ScramState::Initial,
        }
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", escape_username(&self.username), self.nonce)
    }

    /// Whether the nonce is usable: non-empty printable ASCII without `,`.
    #[must_use]
    pub fn nonce_is_valid(nonce: &str) -> bool {
        !nonce.is_empty()
            && nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    }

    /// The client-first message (`n,,n=user,r=nonce`). Moves the exchange on; calling
    /// it twice restarts it.
    #[must_use]
    pub fn client_first(&mut self) -> Vec<u8> {
        self.state = ScramState::SentFirst;
        format!("n,,{}", self.client_first_bare()).into_bytes()
    }

    /// Takes the server-first message and returns the client-final message.
    ///
    /// # Errors
    /// Malformed input, a nonce that does not extend ours, an iteration count out of
    /// bounds, or a call out of order. Any error ends the exchange.
    pub fn handle_server_first(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let result = self.server_first_inner(server_first);
        if result.is_err() {
            self.state = ScramState::Failed;
        }
        result
    }

    fn server_first_inner(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ScramState::SentFirst) {
            return Err(SaslError::UnexpectedMessage(self.state.name()));
        }
        if !Self::nonce_is_valid(&self.nonce) {
            return Err(SaslError::BadNonce);
        }
        let text = std::str::from_utf8(server_first)
            .map_err(|_| SaslError::Malformed("server-first is not UTF-8"))?;
        if let Some(err) = text.strip_prefix("e=") {
            return Err(SaslError::ServerError(err.to_owned()));
        }
        let mut parts = text.split(',');
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(SaslError::Malformed("server-first lacks r="))?;
        let salt = parts
            .next()
            .and_then(|p| p.strip_prefix("s="))
            .ok_or(SaslError::Malformed("server-first lacks s="))?;
        let iterations = parts
            .next()
            .and_then(|p| p.strip_prefix("i="))
            .ok_or(SaslError::Malformed("server-first lacks i="))?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(self.nonce.as_str()) {
            return Err(SaslError::NonceMismatch);
        }
        if !Self::nonce_is_valid(nonce) {
            return Err(SaslError::Malformed(
                "server nonce has forbidden characters",
            ));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| SaslError::Malformed("salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| SaslError::Malformed("iteration count is not a number"))?;
        if !(SCRAM_MIN_ITERATIONS..=SCRAM_MAX_ITERATIONS).contains(&iterations) {
            return Err(SaslError::Iterations(iterations));
        }

        let keys = ScramKeys::derive(self.hash, self.password.as_bytes(), &salt, iterations);
        // "biws" is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message =
            auth_message(&self.client_first_bare(), text, &without_proof).into_bytes();
        let proof = keys.client_proof(&auth_message);
        self.state = ScramState::SentFinal { keys, auth_message };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Takes the server-final message and checks the server's signature.
    ///
    /// # Errors
    /// A server error (`e=`), a wrong signature, malformed input or a call out of order.
    pub fn handle_server_final(&mut self, server_final: &[u8]) -> Result<(), SaslError> {
        let state = std::mem::replace(&mut self.state, ScramState::Failed);
        let ScramState::SentFinal { keys, auth_message } = state else {
            let name = state.name();
            self.state = state;
            return Err(SaslError::UnexpectedMessage(name));
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| SaslError::Malformed("server-final is not UTF-8"))?;
        if let Some(err) = text.strip_prefix("e=") {
            return Err(SaslError::ServerError(err.to_owned()));
        }
        let verifier = text
            .split(',')
            .next()
            .and_then(|p| p.strip_prefix("v="))
            .ok_or(SaslError::Malformed("server-final lacks v="))?;
        let signature = B64
            .decode(verifier)
            .map_err(|_| SaslError::Malformed("server signature is not base64"))?;
        if !keys.server_signature_is_valid(&auth_message, &signature) {
            return Err(SaslError::BadServerSignature);
        }
        self.state = ScramState::Done;
        Ok(())
    }

    /// Whether the server's signature has been verified.
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.state, ScramState::Done)
    }
}

/// One running SASL exchange: what to send next and what to do with the reply.
#[derive(Debug)]
pub(crate) enum SaslSession {
    Plain { message: Option<Vec<u8>> },
    Scram(ScramClient),
    OAuth(OAuthState),
}

/// Where an OAUTHBEARER exchange is.
#[derive(Debug)]
pub(crate) enum OAuthState {
    /// The first message, or why there is none.
    Ready(Result<Vec<u8>, SaslError>),
    /// Sent; the server answers empty (success) or with an error challenge.
    Sent,
    /// The server sent an error challenge; we acknowledged it and wait to fail.
    Failing(String),
}

/// What the connection should do after a SaslAuthenticate response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslStep {
    /// Send these bytes in another SaslAuthenticate.
    Send(Vec<u8>),
    /// Authentication succeeded.
    Done,
}

impl SaslSession {
    pub(crate) fn new(config: &SaslConfig, now: std::time::Instant) -> Self {
        match config.mechanism {
            SaslMechanism::OAuthBearer => {
                let message = match &config.oauth {
                    Some(p) => p.token(now).map(|t| oauth_bearer_message(&t)),
                    None => Err(SaslError::TokenProvider(
                        "no token provider configured".into(),
                    )),
                };
                Self::OAuth(OAuthState::Ready(message))
            }
            SaslMechanism::Plain => Self::Plain {
                message: Some(plain_message(&config.username, &config.password)),
            },
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if config.mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                Self::Scram(ScramClient::new(
                    hash,
                    &config.username,
                    &config.password,
                    &config.nonce,
                ))
            }
        }
    }

    /// The first message the client sends.
    pub(crate) fn first(&mut self) -> Result<Vec<u8>, SaslError> {
        match self {
            Self::Plain { message } => message
                .take()
                .ok_or(SaslError::UnexpectedMessage("PLAIN already sent")),
            Self::Scram(s) => {
                if !ScramClient::nonce_is_valid(&s.nonce) {
                    return Err(SaslError::BadNonce);
                }
                Ok(s.client_first())
            }
            Self::OAuth(state) => match std::mem::replace(state, OAuthState::Sent) {
                OAuthState::Ready(message) => message,
                _ => Err(SaslError::UnexpectedMessage("OAUTHBEARER already sent")),
            },
        }
    }

    /// Takes the server's bytes from a successful SaslAuthenticate response.
    pub(crate) fn step(&mut self, server: &[u8]) -> Result<SaslStep, SaslError> {
        match self {
            Self::Plain { .. } => Ok(SaslStep::Done),
            Self::Scram(s) => match s.state {
                ScramState::SentFirst => s.handle_server_first(server).map(SaslStep::Send),
                _ => s.handle_server_final(server).map(|()| SaslStep::Done),
            },
            Self::OAuth(state) => match state {
                OAuthState::Sent if server.is_empty() => Ok(SaslStep::Done),
                OAuthState::Sent => {
                    // An error challenge (a JSON status): RFC 7628 has the client
                    // answer with a lone separator, then the server fails the exchange.
                    *state = OAuthState::Failing(String::from_utf8_lossy(server).into_owned());
                    Ok(SaslStep::Send(vec![0x01]))
                }
                OAuthState::Failing(why) => Err(SaslError::ServerError(why.clone())),
                OAuthState::Ready(_) => Err(SaslError::UnexpectedMessage("OAUTHBEARER not sent")),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    fn rfc7677() -> ScramClient {
        let mut c = ScramClient::new(ScramHash::Sha256, "user", "pencil", NONCE);
        let _ = c.client_first();
        c
    }

    #[test]
    fn rfc7677_vector() {
        let mut c = rfc7677();
        let fin = c.handle_server_first(SERVER_FIRST).unwrap();
        assert_eq!(
            fin,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                .to_vec()
        );
        c.handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c.is_done());
    }

    #[test]
    fn wrong_server_signature_rejected() {
        let mut c = rfc7677();
        c.handle_server_first(SERVER_FIRST).unwrap();
        assert_eq!(
            c.handle_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslError::BadServerSignature)
        );
        assert!(!c.is_done());
    }

    #[test]
    fn server_nonce_must_extend_ours() {
        let mut c = rfc7677();
        assert_eq!(
            c.handle_server_first(b"r=XOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Err(SaslError::NonceMismatch)
        );
        let mut c = rfc7677();
        assert_eq!(
            c.handle_server_first(b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Err(SaslError::NonceMismatch)
        );
    }

    #[test]
    fn low_iteration_count_rejected() {
        let mut c = rfc7677();
        assert_eq!(
            c.handle_server_first(b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1"),
            Err(SaslError::Iterations(1))
        );
    }

    #[test]
    fn server_error_reported() {
        let mut c = rfc7677();
        c.handle_server_first(SERVER_FIRST).unwrap();
        assert_eq!(
            c.handle_server_final(b"e=invalid-proof"),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn out_of_order_calls_rejected() {
        let mut c = ScramClient::new(ScramHash::Sha512, "u", "p", NONCE);
        assert!(matches!(
            c.handle_server_first(SERVER_FIRST),
            Err(SaslError::UnexpectedMessage(_))
        ));
        let mut c = rfc7677();
        assert!(matches!(
            c.handle_server_final(b"v=AAAA"),
            Err(SaslError::UnexpectedMessage(_))
        ));
    }

    #[test]
    fn username_escaped() {
        let mut c = ScramClient::new(ScramHash::Sha256, "a=b,c", "p", "n");
        assert_eq!(c.client_first(), b"n,,n=a=3Db=2Cc,r=n".to_vec());
    }

    #[test]
    fn malformed_server_first_never_panics() {
        for input in [
            &b""[..],
            b"r=",
            b"r=rOprNGfwEbeRWgbNEkqOx",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=AAAA,i=x",
            b"\xff\xfe",
        ] {
            let mut c = rfc7677();
            assert!(c.handle_server_first(input).is_err(), "{input:?}");
        }
    }

    /// SCRAM-SHA-512 against a server side computed independently from RFC 5802's
    /// definitions (ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)).
    #[test]
    fn sha512_exchange_verifies() {
        let mut c = ScramClient::new(ScramHash::Sha512, "admin", "secret", "abc");
        let first = c.client_first();
        assert_eq!(first, b"n,,n=admin,r=abc".to_vec());
        let salt = b"salty";
        let server_first = format!("r=abcXYZ,s={},i=4096", B64.encode(salt));
        let fin = c.handle_server_first(server_first.as_bytes()).unwrap();
        let fin = String::from_utf8(fin).unwrap();
        let (without_proof, proof) = fin.split_once(",p=").unwrap();
        let auth = format!("n=admin,r=abc,{server_first},{without_proof}");
        let h = ScramHash::Sha512;
        let salted = h.hi(b"secret", salt, 4096);
        // the server checks the proof: H(ClientProof XOR ClientSignature) == StoredKey
        let stored = h.hash(&h.hmac(&salted, b"Client Key"));
        let sig = h.hmac(&stored, auth.as_bytes());
        let proof = B64.decode(proof).unwrap();
        let client_key: Vec<u8> = proof.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(h.hash(&client_key), stored);
        let server_sig = h.hmac(&h.hmac(&salted, b"Server Key"), auth.as_bytes());
        c.handle_server_final(format!("v={}", B64.encode(server_sig)).as_bytes())
            .unwrap();
        assert!(c.is_done());
    }
}
