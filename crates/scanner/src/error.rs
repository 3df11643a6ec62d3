//! The one error type of the crate.

use std::fmt;

/// A limit of [`crate::Limits`] that an input exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Decompressed bytes of one layer.
    LayerBytes,
    /// Tar entries of one layer.
    Entries,
    /// Size of one file the scanners read.
    FileBytes,
    /// Bytes of all the files read from one image.
    TotalReadBytes,
    /// Size of one PAX or GNU long-name header.
    HeaderBytes,
    /// Number of layers of one image.
    Layers,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::LayerBytes => "max_layer_bytes",
            Limit::Entries => "max_entries",
            Limit::FileBytes => "max_file_bytes",
            Limit::TotalReadBytes => "max_total_read_bytes",
            Limit::HeaderBytes => "max_header_bytes",
            Limit::Layers => "max_layers",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The input is larger than a configured limit: the scan stops ("too large").
    #[error("too large: {context} exceeds {limit} ({max})")]
    TooLarge {
        limit: Limit,
        max: u64,
        context: String,
    },
    /// The input uses a format or feature the scanner does not read ("unsupported").
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A layer could not be read as a tar stream (corrupt compression or tar headers).
    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    /// A stored layer index was written by another version of the scanner: index the
    /// layer again.
    #[error("layer index format {found}, this scanner reads {supported}: index the layer again")]
    IndexVersion { found: u32, supported: u32 },
    /// A package database, image manifest or vulnerability record is malformed.
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ScanError {
    pub(crate) fn malformed(path: impl Into<String>, reason: impl fmt::Display) -> Self {
        ScanError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        ScanError::Io {
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T, E = ScanError> = std::result::Result<T, E>;
