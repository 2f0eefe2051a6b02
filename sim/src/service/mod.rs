//! What the simulated service does with the packages of a connection: logins, sessions, the
//! sim's long tasks and the error codes, following `prl-disp-service`
//! (`CDspClientManager::handleToDispatcherPackage`, `processAuthorizeCmd`,
//! `CDspUserHelper::processLogin` / `processUserLoginLocal` / `processUserLogoff`,
//! `CDspShellHelper::cancelOperation` / `attachToLostTask`, `CDspTaskHelper`).
//!
//! # Modules
//! - `state`: the data: [`SimService`] (shared by every connection: configuration, server
//!   info, faults, the registry of connections, sessions, logins in progress and tasks), the
//!   records it keeps, and the `ConnectionHandler` of one served connection;
//! - `dispatch`: admission ([`FaultPolicy`]), the package loop ([`serve`]) and the dispatch of
//!   each package to its handler;
//! - `login`: login, local login, logoff, the login reply;
//! - `tasks`: the sim task (9001), cancel, attach, lost tasks;
//! - `vms`: host info, the VM list, VM info, the VM power operations (on tasks of their own,
//!   serialised per VM) and the VM events; `power`: the outcome table of a power operation
//!   (pure: state in, plan out);
//! - `delivery`: how answers reach a connection (the one that asked, or the session's), with
//!   the reply faults.
//!
//! Imports go one way: `state` ← `delivery` ← `tasks` ← `login` ← `dispatch`, and `state`,
//! `delivery`, `power` ← `vms` ← `dispatch`; the handlers are methods of `ConnectionHandler` in
//! the module of their concern.

mod delivery;
mod dispatch;
mod login;
mod power;
mod state;
mod tasks;
mod vms;

pub(crate) use dispatch::{serve, FaultPolicy};
pub(crate) use state::SimService;
pub use tasks::{
    start_long_task_command, PACF_CANCEL_TASK_ON_END_SESSION, SIM_CMD_START_LONG_TASK,
    SIM_TASK_INTERVAL_MS, SIM_TASK_STEPS,
};
