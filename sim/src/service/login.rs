//! Logging in and off: login 2039 (`CDspClientManager::processAuthorizeCmd`,
//! `CDspUserHelper::processLogin`), easy local login 2186 (`processUserLoginLocal`), the logon
//! limit (`LogonClientSetGuard`), taking over a live session, the login reply
//! (`makeLoginResponsePacket`) and logoff 2042 (`processUserLogoff`).
//!
//! A login request is read with the core's parser ([`LoginRequest::peek_event`]): the checks
//! that come before the password, in the service's order, never decode it, and its wire form
//! ([`WirePassword`]) is decoded only when a password check is due.

use std::sync::Arc;

use prl_protocol::codes::cmd;
use prl_protocol::commands::{
    error_response, login_event, login_reply_with_matrices, package_event, CommandError,
    LoginLocalRequest, LoginPeek, LoginRequest, WirePassword, MAX_PASSWORD_LENGTH,
    PLLF_LOGIN_WITH_RSA_KEYS,
};
use prl_protocol::event::Event;
use prl_protocol::package::Package;
use prl_protocol::{ErrorCode, Uuid};
use zeroize::Zeroize;

use super::state::{canonical_uuid, ConnectionHandler, Flow, SimService, UserSession};
use super::tasks::{lost_tasks, start_long_task_command};

/// `EVT_PARAM_DETAIL_DESCRIPTION`.
const DETAIL_DESCRIPTION: &str = "Details";

/// Removes the connection from `m_setLogonClients` when the login ends.
struct LogonGuard {
    service: Arc<SimService>,
    handle: Uuid,
    captured: bool,
}

impl Drop for LogonGuard {
    fn drop(&mut self) {
        if self.captured {
            self.service.registry().logons.remove(&self.handle);
        }
    }
}

impl ConnectionHandler {
    /// A 2039 or 2186. Whatever happens, the request's payload is zeroed once handled
    /// (`handleToDispatcherPackage`'s scope exit).
    pub(super) async fn login_command(&mut self, p: &mut Package) -> Flow {
        let flow = if p.header.package_type == cmd::USER_LOGIN {
            self.login(p).await
        } else {
            self.login_local(p).await
        };
        zero_payload(p);
        flow
    }

    /// `processAuthorizeCmd` (and `processPubKeyAuthorizeCmd` for the RSA-key flag).
    async fn login(&mut self, p: &mut Package) -> Flow {
        let Ok((
            LoginPeek {
                user,
                prev_session_uuid: prev,
                flags,
            },
            password_wire,
        )) = take_login(p)
        else {
            self.simple(p, ErrorCode::FAILURE).await;
            return Flow::Continue;
        };
        if self.already_logged() {
            self.simple(p, ErrorCode::USER_IS_ALREADY_LOGGED).await;
            return Flow::Continue;
        }
        let Some(guard) = self.logon_guard() else {
            tracing::info!(conn = self.id, "logon actions reached the limit");
            self.simple(p, ErrorCode::DISP_LOGON_ACTIONS_REACHED_UP_LIMIT)
                .await;
            return Flow::Continue;
        };
        if flags & PLLF_LOGIN_WITH_RSA_KEYS != 0 {
            // Public-key login: the simulator knows no authorised keys.
            self.simple(p, ErrorCode::PUBLIC_KEY_NOT_AUTHORIZED).await;
            return Flow::Continue;
        }
        // Session restore: a live session named by the previous session uuid is reused
        // without a password check.
        let live = if prev.is_empty() {
            None
        } else {
            let registry = self.service.registry();
            canonical_uuid(&prev).and_then(|u| registry.sessions.get(&u).cloned())
        };
        let created = live.is_none();
        let session = match live {
            Some(s) => {
                tracing::info!(conn = self.id, user = %s.user, "live session restored");
                s
            }
            None => {
                if !self.service.config.auth_delay.is_zero() {
                    tokio::time::sleep(self.service.config.auth_delay).await;
                }
                let password = match password_wire.decode(self.base64_password()) {
                    Ok(pw) => pw,
                    Err(CommandError::PasswordTooLong { .. }) => {
                        tracing::info!(conn = self.id, %user, "password exceeds maximum length");
                        self.password_too_long(p).await;
                        return Flow::Continue;
                    }
                    // Qt's decoding itself never fails; only the length check does.
                    Err(_) => {
                        self.simple(p, ErrorCode::AUTHENTICATION_FAILED).await;
                        return Flow::Continue;
                    }
                };
                drop(password_wire);
                if user.is_empty()
                    || self
                        .service
                        .users()
                        .authenticate(&user, password.expose())
                        .is_none()
                {
                    tracing::info!(conn = self.id, %user, "authentication failed");
                    self.simple(p, ErrorCode::AUTHENTICATION_FAILED).await;
                    return Flow::Continue;
                }
                Arc::new(UserSession {
                    handle: self.handle_str(),
                    user,
                    prev_session: prev,
                    local: false,
                })
            }
        };
        // The login is no longer in progress once the session exists (the service queues the
        // reply without waiting, then releases the guard).
        self.start_session(p, session, guard, created).await;
        Flow::Continue
    }

    /// `processLogin`'s answer to a password longer than `MAX_ENCODED_PASSWORD_LENGTH`:
    /// `PRL_ERR_INVALID_ARG` with an error event (`sendResponseError`).
    async fn password_too_long(&self, p: &Package) {
        let mut e = Event {
            code: ErrorCode::INVALID_ARG.0,
            ..Event::default()
        };
        e.add_string(
            DETAIL_DESCRIPTION,
            format!("Passwords longer than {MAX_PASSWORD_LENGTH} characters are not allowed"),
        );
        let reply = error_response(
            p,
            self.info.local_connection_uuid,
            Uuid::new_v4(),
            &e,
            &mut Uuid::new_v4,
        );
        self.reply(reply).await;
    }

    /// `DspCmdUserEasyLoginLocal`: the user is the unix peer's uid.
    async fn login_local(&mut self, p: &Package) -> Flow {
        if self.already_logged() {
            self.simple(p, ErrorCode::USER_IS_ALREADY_LOGGED).await;
            return Flow::Continue;
        }
        let Some(guard) = self.logon_guard() else {
            self.simple(p, ErrorCode::DISP_LOGON_ACTIONS_REACHED_UP_LIMIT)
                .await;
            return Flow::Continue;
        };
        let request = match package_event(p).and_then(|e| LoginLocalRequest::from_event(&e)) {
            Ok(r) => r,
            Err(_) => {
                self.simple(p, ErrorCode::FAILURE).await;
                return Flow::Continue;
            }
        };
        let user = self
            .info
            .peer_uid()
            .and_then(|uid| self.service.users().by_uid(uid))
            .map(|u| u.name().to_owned());
        let Some(user) = user else {
            tracing::info!(conn = self.id, uid = ?self.info.peer_uid(), "local authentication failed");
            self.simple(p, ErrorCode::LOCAL_AUTHENTICATION_FAILED).await;
            return Flow::Continue;
        };
        let session = Arc::new(UserSession {
            handle: self.handle_str(),
            user,
            prev_session: request.prev_session_uuid,
            local: true,
        });
        // The login is no longer in progress once the session exists (the service queues the
        // reply without waiting, then releases the guard).
        self.start_session(p, session, guard, true).await;
        Flow::Continue
    }

    /// `processUserLogoff`: SUCCESS through the session, then the session's connection is
    /// closed (`deleteUserSession(pUser->getClientHandle())`). From a connection that restored
    /// another's live session, that is the other one; this connection stays open and logged
    /// in.
    pub(super) async fn logoff(&self, p: &Package, session: &UserSession) -> Flow {
        tracing::info!(conn = self.id, user = %session.user, "logged off");
        self.simple_via_session(p, session, ErrorCode::SUCCESS)
            .await;
        if session.handle == self.handle_str() {
            return Flow::Close;
        }
        let other = self
            .service
            .registry()
            .link_of(&session.handle)
            .map(|l| l.sender.clone());
        if let Some(sender) = other {
            let _ = sender.close().await;
        }
        Flow::Continue
    }

    /// `LogonClientSetGuard`: root on the unix socket is trusted (not counted); otherwise at
    /// most `MaxLogonActions` logins may be in progress.
    fn logon_guard(&self) -> Option<LogonGuard> {
        let trusted = self.info.peer_uid() == Some(0);
        let mut registry = self.service.registry();
        if trusted {
            return Some(LogonGuard {
                service: self.service.clone(),
                handle: self.handle,
                captured: false,
            });
        }
        if registry.logons.len() >= self.service.config.max_logon_actions {
            return None;
        }
        registry.logons.insert(self.handle);
        Some(LogonGuard {
            service: self.service.clone(),
            handle: self.handle,
            captured: true,
        })
    }

    fn already_logged(&self) -> bool {
        self.service.registry().sessions.contains_key(&self.handle)
    }

    /// Registers the session and sends `makeLoginResponsePacket`; `created`: a new session
    /// (not a live one taken over).
    async fn start_session(
        &self,
        p: &Package,
        session: Arc<UserSession>,
        mut guard: LogonGuard,
        created: bool,
    ) {
        let tasks = {
            let mut registry = self.service.registry();
            registry.sessions.insert(self.handle, session.clone());
            if guard.captured {
                registry.logons.remove(&guard.handle);
                guard.captured = false;
            }
            lost_tasks(&registry, &session.prev_session)
        };
        tracing::info!(
            conn = self.id,
            user = %session.user,
            local = session.local,
            lost_tasks = tasks.len(),
            "session started"
        );
        // `makeLoginResponsePacket` + `pClient->sendPackage`: the reply carries the session's
        // uuid and goes to the session's connection, in the format that connection's client
        // takes; after a live session was restored from another connection, that is the old
        // one, and the connection that asked gets nothing. A binary reply (client protocol
        // >= 6.2) ends with the OS matrix and the features matrix, as the service's does.
        let login = login_event(
            &session.handle,
            &self.service.info,
            &tasks,
            &mut Uuid::new_v4,
        );
        self.reply_via_session(&session, |target| {
            login_reply_with_matrices(
                p,
                target.local_uuid,
                Uuid::new_v4(),
                &login,
                &self.service.matrices,
                target.binary_response,
                &mut Uuid::new_v4,
            )
        })
        .await;
        if let (Some(spec), true) = (self.service.config.task_on_login, created) {
            // `--task-on-login`: as if the client had sent 9001 right after its login.
            let request = start_long_task_command(
                spec.steps,
                spec.interval_ms,
                0,
                Uuid::new_v4(),
                self.handle,
            );
            if !self.spawn_task(&request, spec, 0, &session) {
                tracing::warn!(conn = self.id, "task on login not started: task limit");
            }
        }
    }
}

/// Reads a login request with the core's parser, then zeroes its payload (as the service does
/// once it has handled a 2039 or 2186): afterwards the wire password exists only in the
/// returned zeroizing [`WirePassword`], and the parsed event's copy is wiped.
fn take_login(p: &mut Package) -> Result<(LoginPeek, WirePassword), CommandError> {
    let taken = package_event(p).and_then(|mut event| {
        let taken = LoginRequest::peek_event(&event)
            .and_then(|peek| Ok((peek, WirePassword::take(&mut event)?)));
        event.wipe();
        taken
    });
    zero_payload(p);
    taken
}

/// Zeroes buffer 0, the command's payload (`bzero(p->buffers[0].getImpl(), size)`).
fn zero_payload(p: &mut Package) {
    if let Some(b) = p.buffers.first_mut() {
        b.data.as_mut_slice().zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::commands::{Password, PCF_ORIGINAL_CLIENT};

    #[test]
    fn a_parsed_login_leaves_no_password_in_the_request() {
        let request = LoginRequest {
            user: "testuser".into(),
            password: Password::new("Zer0ize-me"),
            prev_session_uuid: String::new(),
            flags: PCF_ORIGINAL_CLIENT,
        };
        let mut p = request.to_package(Uuid::from_u128(1), Uuid::from_u128(2), true, &mut || {
            Uuid::from_u128(3)
        });
        let len = p.buffers[0].data.len();
        let wire = request.password.encode(true);
        let (fields, password_wire) = take_login(&mut p).unwrap();
        assert_eq!(fields.user, "testuser");
        assert_eq!(fields.flags, PCF_ORIGINAL_CLIENT);
        assert_eq!(password_wire.expose(), wire.as_str());
        assert_eq!(password_wire.decode(true).unwrap().expose(), "Zer0ize-me");
        // The payload is zeroed in place, like `bzero(p->buffers[0])`.
        assert_eq!(p.buffers[0].data.len(), len);
        assert!(p.buffers[0].data.iter().all(|b| *b == 0));
        // A request that is not a valid login is zeroed too.
        let mut bad = Package::request(cmd::USER_LOGIN, Uuid::nil(), Uuid::nil(), vec![])
            .with_text("<ParallelsEvent/>");
        assert!(take_login(&mut bad).is_err());
        assert!(bad.buffers[0].data.iter().all(|b| *b == 0));
    }
}
