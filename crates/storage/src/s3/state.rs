//! What an S3 upload consists of between requests; recorded by the registry with the
//! upload's session and handed back with the next request, on any node.

use serde::{Deserialize, Serialize};

use crate::StorageError;

/// JSON: compact enough (about 60 bytes a part) and readable in a session row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UploadState {
    /// The multipart upload at `uploads/<id>/data`, created when the first part fills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<String>,
    /// The parts sent, in order: part `i` has number `i + 1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// The bytes after the last part (fewer than a part holds), as a temporary object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<Temp>,
    /// Once `read_upload` assembled the upload: the one object holding all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Temp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Part {
    /// What S3 answered for the part; completion fails unless the part still has it.
    pub etag: String,
    pub size: u64,
}

/// A temporary object under `uploads/<id>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Temp {
    pub name: String,
    pub size: u64,
}

impl UploadState {
    /// An empty state is a fresh upload (what `begin_upload` returns).
    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        if bytes.is_empty() {
            return Ok(UploadState::default());
        }
        serde_json::from_slice(bytes).map_err(|e| StorageError::CorruptState(e.to_string()))
    }

    pub fn encode(&self) -> Vec<u8> {
        if *self == UploadState::default() {
            return Vec::new();
        }
        serde_json::to_vec(self).expect("upload state serializes")
    }

    pub fn size(&self) -> u64 {
        match &self.sealed {
            Some(sealed) => sealed.size,
            None => {
                self.parts.iter().map(|p| p.size).sum::<u64>()
                    + self.tail.as_ref().map_or(0, |t| t.size)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sizes() {
        assert_eq!(UploadState::decode(b"").unwrap(), UploadState::default());
        assert!(UploadState::default().encode().is_empty());
        let s = UploadState {
            multipart: Some("mp".into()),
            parts: vec![Part {
                etag: "\"e1\"".into(),
                size: 8,
            }],
            tail: Some(Temp {
                name: "tail-1".into(),
                size: 3,
            }),
            sealed: None,
        };
        assert_eq!(s.size(), 11);
        assert_eq!(UploadState::decode(&s.encode()).unwrap(), s);
        assert!(matches!(
            UploadState::decode(b"{not json"),
            Err(StorageError::CorruptState(_))
        ));
    }
}
