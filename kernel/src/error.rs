//! The kernel's error type. User errors (bad options, bad records, missing files) are kept
//! apart from internal ones so the CLI can choose the exit code.

use arrow::error::ArrowError;
use datafusion_common::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: a bad option, a missing file, an unsupported construct.
    #[error("{0}")]
    User(String),
    /// A malformed input record, with where it was found.
    #[error("malformed record in {path}, line {line}: {reason}")]
    Record {
        path: String,
        line: u64,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    State(#[from] gemini_state::StateError),
    /// A bug or a broken invariant inside eddy.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn user(msg: impl Into<String>) -> Self {
        Error::User(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the user can fix this by changing their input (exit code 2).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::User(_) | Error::Record { .. } | Error::Io { .. } => true,
            Error::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::Plan(_)
                    | DataFusionError::SQL(..)
                    | DataFusionError::SchemaError(..)
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
