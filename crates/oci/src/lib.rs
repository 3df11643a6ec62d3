//! OCI primitives shared by every layer of Bulwark. Pure: no I/O, no async.

mod digest;
mod error;
mod manifest;
mod name;

pub use digest::{Algorithm, Digest, DigestHasher, HashStateError};
pub use error::{ErrorCode, OciError};
pub use manifest::{Descriptor, ManifestKind, ParsedManifest, media_types};
pub use name::{Reference, RepoName, Tag, namespace_of};
