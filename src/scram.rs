//! The arithmetic of SCRAM (RFC 5802, RFC 7677) that both ends of an exchange share:
//! the salted password and the keys derived from it, the auth message, proofs and
//! signatures, and `saslname` escaping.
//!
//! The client ([`connection::sasl`](crate::connection::sasl)) and the simulated
//! server (`sim::sasl`) both use this module and neither imports the other. The
//! message syntax and the state of an exchange stay with each side.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The hash a SCRAM exchange uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-256 (`SCRAM-SHA-256`).
    Sha256,
    /// SHA-512 (`SCRAM-SHA-512`).
    Sha512,
}

macro_rules! hash_fns {
    ($hmac:ident, $hash:ident, $hi:ident, $verify:ident, $d:ty) => {
        fn $hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac =
                <Hmac<$d> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        fn $hash(data: &[u8]) -> Vec<u8> {
            <$d>::digest(data).to_vec()
        }
        fn $hi(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
            let mut out = vec![0u8; <$d>::output_size()];
            pbkdf2::pbkdf2_hmac::<$d>(password, salt, iterations, &mut out);
            out
        }
        fn $verify(key: &[u8], data: &[u8], signature: &[u8]) -> bool {
            let mut mac =
                <Hmac<$d> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(data);
            mac.verify_slice(signature).is_ok()
        }
    };
}
hash_fns!(hmac256, hash256, hi256, verify256, Sha256);
hash_fns!(hmac512, hash512, hi512, verify512, Sha512);

impl ScramHash {
    /// `HMAC(key, data)`.
    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => hmac256(key, data),
            Self::Sha512 => hmac512(key, data),
        }
    }

    /// `H(data)`.
    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => hash256(data),
            Self::Sha512 => hash512(data),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this hash's HMAC.
    pub(crate) fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => hi256(password, salt, iterations),
            Self::Sha512 => hi512(password, salt, iterations),
        }
    }

    /// Whether `signature` is `HMAC(key, data)`, compared in constant time.
    pub(crate) fn verify(self, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Sha256 => verify256(key, data, signature),
            Self::Sha512 => verify512(key, data, signature),
        }
    }
}

/// The keys RFC 5802 derives from a password: both ends compute them, the client to
/// prove it knows the password, the server to check that proof and sign its answer.
#[derive(Clone)]
pub(crate) struct ScramKeys {
    hash: ScramHash,
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramKeys {
    /// `SaltedPassword := Hi(password, salt, i)`, then `ClientKey`, `StoredKey` and
    /// `ServerKey` from it.
    pub(crate) fn derive(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = hash.hi(password, salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramKeys {
            hash,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
            client_key,
        }
    }

    /// `ClientProof := ClientKey XOR HMAC(StoredKey, AuthMessage)`.
    pub(crate) fn client_proof(&self, auth_message: &[u8]) -> Vec<u8> {
        let signature = self.hash.hmac(&self.stored_key, auth_message);
        xor(&self.client_key, &signature)
    }

    /// The server's check of a client proof: `H(ClientProof XOR ClientSignature)`
    /// must be `StoredKey`.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))] // the simulated server's side
    pub(crate) fn proof_is_valid(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        let signature = self.hash.hmac(&self.stored_key, auth_message);
        proof.len() == signature.len() && self.hash.hash(&xor(proof, &signature)) == self.stored_key
    }

    /// `ServerSignature := HMAC(ServerKey, AuthMessage)`.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))] // the simulated server's side
    pub(crate) fn server_signature(&self, auth_message: &[u8]) -> Vec<u8> {
        self.hash.hmac(&self.server_key, auth_message)
    }

    /// The client's check of the server's signature, in constant time.
    pub(crate) fn server_signature_is_valid(&self, auth_message: &[u8], signature: &[u8]) -> bool {
        self.hash.verify(&self.server_key, auth_message, signature)
    }
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramKeys")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// `AuthMessage := client-first-message-bare "," server-first-message ","
/// client-final-message-without-proof`.
pub(crate) fn auth_message(
    client_first_bare: &str,
    server_first: &str,
    without_proof: &str,
) -> String {
    format!("{client_first_bare},{server_first},{without_proof}")
}

/// `saslname` escaping: `=` becomes `=3D` and `,` becomes `=2C`.
pub(crate) fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The reverse of [`escape_username`].
#[cfg_attr(not(feature = "sim"), allow(dead_code))] // the simulated server's side
pub(crate) fn unescape_username(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn usernames_round_trip_through_escaping() {
        for name in ["user", "a=b,c", "=2C", ",,==", ""] {
            assert_eq!(unescape_username(&escape_username(name)), name);
        }
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
    }

    /// The server accepts the proof the client computes from the same password, and
    /// the client accepts the server's signature; another password fails both ways.
    #[test]
    fn both_ends_agree_only_on_the_same_password() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let client = ScramKeys::derive(hash, b"pencil", b"salt", 4096);
            let server = ScramKeys::derive(hash, b"pencil", b"salt", 4096);
            let other = ScramKeys::derive(hash, b"pen", b"salt", 4096);
            let auth = auth_message("n=user,r=a", "r=ab,s=c2FsdA==,i=4096", "c=biws,r=ab");
            let proof = client.client_proof(auth.as_bytes());
            assert!(server.proof_is_valid(auth.as_bytes(), &proof));
            assert!(!other.proof_is_valid(auth.as_bytes(), &proof));
            assert!(!server.proof_is_valid(auth.as_bytes(), &proof[1..]));
            let signature = server.server_signature(auth.as_bytes());
            assert!(client.server_signature_is_valid(auth.as_bytes(), &signature));
            assert!(!other.server_signature_is_valid(auth.as_bytes(), &signature));
        }
    }
}
