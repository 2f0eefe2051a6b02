//! The simulator's configuration error, below every module that reports one (config, faults,
//! users), so none of them depends on another for it.

/// A configuration problem; the message names the flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The users file cannot be read or parsed.
    #[error("users file: {0}")]
    UsersFile(String),
    /// A `--user` / `--local-user` spec or a user entry is invalid.
    #[error("user: {0}")]
    UserSpec(String),
    /// A `--fault` spec is invalid.
    #[error("fault: {0}")]
    Fault(String),
    /// Options that do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// A listener cannot be set up.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// `tcp://ADDR` or `unix://PATH`.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The transport could not be configured.
    #[error("transport: {0}")]
    Transport(#[from] prl_transport::TransportError),
    /// The VM inventory (`--vms FILE`) is invalid.
    #[error("vms file: {0}")]
    Inventory(#[from] crate::inventory::InventoryError),
}

impl ConfigError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::UsersFile(_) => "users_file",
            ConfigError::UserSpec(_) => "user_spec",
            ConfigError::Fault(_) => "fault",
            ConfigError::Invalid(_) => "invalid",
            ConfigError::Listen { .. } => "listen",
            ConfigError::Transport(_) => "transport",
            ConfigError::Inventory(_) => "inventory",
        }
    }
}
