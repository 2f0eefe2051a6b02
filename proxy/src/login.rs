//! Recognising logins in the package stream (for throttling, takeover refusal and metrics).
//!
//! The proxy never logs or stores the password; it reads only the user name (throttling key)
//! and the previous session UUID (takeover check) of a 2039 request, and the result code of
//! the reply.

use prl_protocol::codes::cmd;
use prl_protocol::package::Package;

/// What the proxy needs to know about a login request.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginFacts {
    /// The user name (throttling key; not logged).
    pub user: String,
    /// `login_cmd_session_uuid_to_restore`, if non-empty (braced form, lower-cased).
    pub prev_session: Option<String>,
}

impl std::fmt::Debug for LoginFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFacts")
            .field("user", &"<redacted>")
            .field(
                "prev_session",
                &self.prev_session.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Parse the parameters of a 2039 / 2186 request; `None` if it is not parseable (the service
/// will answer it with PRL_ERR_FAILURE; the proxy forwards it without login semantics).
// TODO(protocol): move to prl_protocol::commands (LoginRequest::parse) once it lands.
pub fn inspect_login(package: &Package) -> Option<LoginFacts> {
    let text = package.text(0)?.ok()?;
    let (user_key, prev_key) = match package.header.package_type {
        cmd::USER_LOGIN => ("login_cmd_username", "login_cmd_session_uuid_to_restore"),
        cmd::USER_EASY_LOGIN_LOCAL => ("", "easy_login_local_cmd_session_uuid_to_restore"),
        _ => return None,
    };
    let mut user = None;
    let mut prev = None;
    for (name, value) in event_params(text) {
        if !user_key.is_empty() && name == user_key {
            user = Some(value);
        } else if name == prev_key {
            prev = Some(value);
        }
    }
    let prev_session = prev
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty());
    Some(LoginFacts {
        user: user.unwrap_or_default(),
        prev_session,
    })
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s.get(start..)?.find(close)? + start;
    s.get(start..end)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `(Name, Value)` of each `<EventParameter>` of a CVmEvent XML.
fn event_params(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(pos) = rest
        .find("<EventParameter ")
        .or_else(|| rest.find("<EventParameter>"))
    {
        let Some(after) = rest.get(pos..) else { break };
        let Some(end) = after.find("</EventParameter>") else {
            break;
        };
        let Some(block) = after.get(..end) else { break };
        if let Some(name) = between(block, "<Name>", "</Name>") {
            let value = between(block, "<Value>", "</Value>").unwrap_or("");
            out.push((unescape(name), unescape(value)));
        }
        rest = after.get(end + "</EventParameter>".len()..).unwrap_or("");
        if out.len() > 64 {
            break;
        }
    }
    out
}

/// The result code of a reply (5001 XML `EventCode`; 5003 binary replies are successes of
/// the login path, their code is read from the first event when present).
pub fn reply_code(package: &Package) -> Option<u32> {
    match package.header.package_type {
        cmd::WS_RESPONSE => {
            let text = package.text(0)?.ok()?;
            let code: i64 = between(text, "<EventCode>", "</EventCode>")?
                .trim()
                .parse()
                .ok()?;
            Some(code as i32 as u32)
        }
        cmd::WS_BINARY_RESPONSE => {
            // QDataStream CVmEvent: u32 type, u32 issuer type, str issuer id, u32 level, u32 code.
            let b = &package.buffers.first()?.data;
            let rd = |at: usize| -> Option<u32> {
                Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
            };
            let id_len = rd(8)?;
            let skip = if id_len == u32::MAX {
                0
            } else {
                id_len as usize
            };
            rd(12 + skip + 4)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::package::text_buffer;
    use uuid::Uuid;

    fn login_xml(user: &str, prev: &str) -> String {
        format!(
            "<ParallelsEvent>\n <EventCode>0</EventCode>\n <EventParameters dyn_lists=\"EventParameter 3\">\n  \
<EventParameter id=\"0\" dyn_lists=\"\"><Name>login_cmd_username</Name><Type>1</Type><Value>{user}</Value></EventParameter>\n  \
<EventParameter id=\"1\" dyn_lists=\"\"><Name>login_cmd_password</Name><Type>1</Type><Value>c2VjcmV0</Value></EventParameter>\n  \
<EventParameter id=\"2\" dyn_lists=\"\"><Name>login_cmd_session_uuid_to_restore</Name><Type>1</Type><Value>{prev}</Value></EventParameter>\n \
</EventParameters>\n</ParallelsEvent>\n"
        )
    }

    #[test]
    fn reads_user_and_previous_session() {
        let p = Package::request(
            cmd::USER_LOGIN,
            Uuid::nil(),
            Uuid::nil(),
            vec![text_buffer(&login_xml("a&amp;b", "{AB}"))],
        );
        let f = inspect_login(&p).unwrap();
        assert_eq!(f.user, "a&b");
        assert_eq!(f.prev_session.as_deref(), Some("{ab}"));
        let p = Package::request(
            cmd::USER_LOGIN,
            Uuid::nil(),
            Uuid::nil(),
            vec![text_buffer(&login_xml("u", ""))],
        );
        assert_eq!(inspect_login(&p).unwrap().prev_session, None);
        let dbg = format!("{:?}", inspect_login(&p).unwrap());
        assert!(!dbg.contains('u') || dbg.contains("<redacted>"));
    }

    #[test]
    fn reply_codes() {
        let xml = "<ParallelsEvent><EventCode>-2147482832</EventCode></ParallelsEvent>";
        let p = Package::request(
            cmd::WS_RESPONSE,
            Uuid::nil(),
            Uuid::nil(),
            vec![text_buffer(xml)],
        );
        assert_eq!(reply_code(&p), Some(0x8000_0330));
    }
}
