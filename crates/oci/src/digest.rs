//! Content digests (`algorithm:hex`) and a resumable streaming hasher.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::OciError;

/// The digest algorithms the OCI image spec registers and Bulwark accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest: a registered algorithm and its lowercase hex encoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part, lowercase hex.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// SHA-256 digest of a byte slice (manifests, small test blobs).
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut h = DigestHasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    /// Digest of `bytes` with this digest's algorithm.
    pub fn same_algorithm_of(&self, bytes: &[u8]) -> Digest {
        let mut h = DigestHasher::new(self.algorithm);
        h.update(bytes);
        h.finish()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || OciError::DigestInvalid(truncate(s));
        let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            // Well-formed (per the image spec grammar) but unregistered algorithms are
            // unsupported rather than invalid.
            a if !a.is_empty()
                && a.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                }) =>
            {
                return Err(OciError::UnsupportedDigest(truncate(s)));
            }
            _ => return Err(invalid()),
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bounds untrusted text echoed back in error messages.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[derive(Debug, thiserror::Error)]
#[error("saved hash state is corrupt or belongs to another algorithm")]
pub struct HashStateError;

/// A streaming hasher whose state can be saved between requests, so that a chunked
/// upload is hashed once, as its bytes arrive, on whichever node receives each chunk.
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl DigestHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            DigestHasher::Sha256(_) => Algorithm::Sha256,
            DigestHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let algorithm = self.algorithm();
        let hex = match self {
            DigestHasher::Sha256(h) => hex::encode(h.finalize()),
            DigestHasher::Sha512(h) => hex::encode(h.finalize()),
        };
        Digest { algorithm, hex }
    }

    /// The state as bytes, prefixed with the algorithm, to persist between chunks.
    pub fn save(&self) -> Vec<u8> {
        let mut out = vec![self.algorithm() as u8];
        match self {
            DigestHasher::Sha256(h) => out.extend_from_slice(&h.serialize()),
            DigestHasher::Sha512(h) => out.extend_from_slice(&h.serialize()),
        }
        out
    }

    pub fn restore(saved: &[u8]) -> Result<Self, HashStateError> {
        let (tag, state) = saved.split_first().ok_or(HashStateError)?;
        match *tag {
            t if t == Algorithm::Sha256 as u8 => {
                let state = state.try_into().map_err(|_| HashStateError)?;
                Sha256::deserialize(state)
                    .map(DigestHasher::Sha256)
                    .map_err(|_| HashStateError)
            }
            t if t == Algorithm::Sha512 as u8 => {
                let state = state.try_into().map_err(|_| HashStateError)?;
                Sha512::deserialize(state)
                    .map(DigestHasher::Sha512)
                    .map_err(|_| HashStateError)
            }
            _ => Err(HashStateError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(Digest::sha256_of(b""), d);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            ":e3b0",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(OciError::DigestInvalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(OciError::UnsupportedDigest(_))
        ));
    }

    #[test]
    fn sha512_known_value() {
        let mut h = DigestHasher::new(Algorithm::Sha512);
        h.update(b"abc");
        assert_eq!(
            h.finish().hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn saved_state_resumes_identically() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
            let mut whole = DigestHasher::new(alg);
            whole.update(&data);
            let mut first = DigestHasher::new(alg);
            first.update(&data[..3333]);
            let mut resumed = DigestHasher::restore(&first.save()).unwrap();
            resumed.update(&data[3333..]);
            assert_eq!(resumed.finish(), whole.finish());
        }
        assert!(DigestHasher::restore(&[9, 1, 2]).is_err());
        assert!(DigestHasher::restore(&[0, 1, 2]).is_err());
    }
}
