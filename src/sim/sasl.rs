//! The broker side of SASL for the simulated cluster: PLAIN, SCRAM-SHA-256/512
//! (RFC 5802 / 7677, no channel binding) and OAUTHBEARER (RFC 7628, tokens checked
//! against a list), with users and salts from the configuration and server nonces
//! from the cluster's seed.

use crate::scram::{ScramHash, ScramKeys, auth_message, unescape_username};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::BTreeMap;

/// SASL settings of a simulated cluster: who may log in, and how.
#[derive(Debug, Clone)]
pub struct SimSasl {
    /// Username to password.
    pub users: BTreeMap<String, String>,
    /// SCRAM iteration count (4096 is Kafka's default).
    pub iterations: u32,
    /// OAUTHBEARER tokens the broker accepts.
    pub oauth_tokens: std::collections::BTreeSet<String>,
    /// The session lifetime granted on authentication (KIP-368), after which a
    /// client re-authenticates; `None` grants no limit.
    pub session_lifetime: Option<std::time::Duration>,
}

impl SimSasl {
    /// One user, 4096 SCRAM iterations.
    #[must_use]
    pub fn user(name: &str, password: &str) -> Self {
        SimSasl {
            users: BTreeMap::from([(name.to_string(), password.to_string())]),
            iterations: 4096,
            oauth_tokens: Default::default(),
            session_lifetime: None,
        }
    }

    /// Accepts these OAUTHBEARER tokens (and no user for PLAIN or SCRAM).
    #[must_use]
    pub fn oauth_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        SimSasl {
            users: BTreeMap::new(),
            iterations: 4096,
            oauth_tokens: tokens.into_iter().map(str::to_owned).collect(),
            session_lifetime: None,
        }
    }
}

/// The mechanisms the simulated broker offers, in the order it lists them.
pub(crate) const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Where one connection is in authentication.
#[derive(Debug, Clone, Default)]
pub(crate) enum AuthState {
    /// Nothing yet: only ApiVersions and SaslHandshake are accepted.
    #[default]
    Start,
    /// A mechanism was chosen; SaslAuthenticate rounds follow.
    Mechanism(Mechanism),
    /// SCRAM: the server-first message went out.
    ScramSentFirst {
        hash: ScramHash,
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    /// OAUTHBEARER: an error challenge went out; the client acknowledges it and
    /// the exchange fails with this message.
    OAuthFailing(String),
    /// Logged in: every API is open.
    Authenticated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Scram(ScramHash),
    OAuthBearer,
}

pub(crate) fn mechanism(name: &str) -> Option<Mechanism> {
    match name {
        "PLAIN" => Some(Mechanism::Plain),
        "SCRAM-SHA-256" => Some(Mechanism::Scram(ScramHash::Sha256)),
        "SCRAM-SHA-512" => Some(Mechanism::Scram(ScramHash::Sha512)),
        "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
        _ => None,
    }
}

/// One SaslAuthenticate round: the reply bytes, or an error message for the client.
pub(crate) fn step(
    state: &mut AuthState,
    config: &SimSasl,
    token: &[u8],
    server_nonce: &str,
) -> Result<Vec<u8>, String> {
    match std::mem::take(state) {
        AuthState::Mechanism(Mechanism::Plain) => {
            // authzid NUL authcid NUL password
            let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
            if parts.len() != 3 {
                return Err("malformed PLAIN message".into());
            }
            let user = std::str::from_utf8(parts[1]).map_err(|_| "user is not UTF-8")?;
            let password = std::str::from_utf8(parts[2]).map_err(|_| "password is not UTF-8")?;
            if config.users.get(user).is_some_and(|p| p == password) {
                *state = AuthState::Authenticated;
                Ok(Vec::new())
            } else {
                Err(format!(
                    "Authentication failed: invalid credentials for user {user}"
                ))
            }
        }
        AuthState::Mechanism(Mechanism::Scram(hash)) => {
            let text = std::str::from_utf8(token).map_err(|_| "client-first is not UTF-8")?;
            let bare = text
                .strip_prefix("n,,")
                .or_else(|| text.strip_prefix("y,,"))
                .ok_or("channel binding and authzid are not supported")?;
            let mut user = None;
            let mut client_nonce = None;
            for attr in bare.split(',') {
                if let Some(u) = attr.strip_prefix("n=") {
                    user = Some(unescape_username(u));
                } else if let Some(r) = attr.strip_prefix("r=") {
                    client_nonce = Some(r.to_string());
                }
            }
            let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
                return Err("client-first lacks n= or r=".into());
            };
            if !config.users.contains_key(&user) {
                return Err(format!("Authentication failed: unknown user {user}"));
            }
            let nonce = format!("{client_nonce}{server_nonce}");
            let salt = salt_for(&user);
            let server_first = format!("r={nonce},s={},i={}", B64.encode(salt), config.iterations);
            *state = AuthState::ScramSentFirst {
                hash,
                user,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            };
            Ok(server_first.into_bytes())
        }
        AuthState::ScramSentFirst {
            hash,
            user,
            client_first_bare,
            server_first,
            nonce,
        } => {
            let text = std::str::from_utf8(token).map_err(|_| "client-final is not UTF-8")?;
            let (without_proof, proof) = text.rsplit_once(",p=").ok_or("client-final lacks p=")?;
            if !without_proof
                .split(',')
                .any(|a| a.strip_prefix("r=") == Some(nonce.as_str()))
            {
                return Err("nonce mismatch".into());
            }
            let proof = B64.decode(proof).map_err(|_| "proof is not base64")?;
            let password = config.users.get(&user).ok_or("unknown user")?;
            let keys = ScramKeys::derive(
                hash,
                password.as_bytes(),
                &salt_for(&user),
                config.iterations,
            );
            let auth_message = auth_message(&client_first_bare, &server_first, without_proof);
            if !keys.proof_is_valid(auth_message.as_bytes(), &proof) {
                return Err("Authentication failed during authentication due to invalid credentials with SASL mechanism".into());
            }
            let server_signature = keys.server_signature(auth_message.as_bytes());
            *state = AuthState::Authenticated;
            Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
        }
        AuthState::Mechanism(Mechanism::OAuthBearer) => {
            // n,,\x01auth=Bearer TOKEN[\x01key=value]...\x01\x01
            let text =
                std::str::from_utf8(token).map_err(|_| "OAUTHBEARER message is not UTF-8")?;
            let token = text
                .strip_prefix("n,,\x01")
                .and_then(|rest| rest.split('\x01').next())
                .and_then(|auth| auth.strip_prefix("auth=Bearer "));
            match token {
                Some(t) if config.oauth_tokens.contains(t) => {
                    *state = AuthState::Authenticated;
                    Ok(Vec::new())
                }
                _ => {
                    // Kafka's way: an error challenge, then a failure once the
                    // client acknowledges it.
                    *state = AuthState::OAuthFailing("invalid_token".into());
                    Ok(br#"{"status":"invalid_token"}"#.to_vec())
                }
            }
        }
        AuthState::OAuthFailing(why) => Err(format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER ({why})"
        )),
        other => {
            *state = other;
            Err("unexpected SaslAuthenticate".into())
        }
    }
}

/// A fixed salt per user, so runs are reproducible.
fn salt_for(user: &str) -> Vec<u8> {
    let mut salt = b"kafka-sansio-sim:".to_vec();
    salt.extend_from_slice(user.as_bytes());
    salt
}
