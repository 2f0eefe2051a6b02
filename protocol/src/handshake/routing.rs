//! Routes and routing tables (`IORoutingTable`, `IORoutingTableHelper`): which package types
//! go through TLS, the tables each security level uses, their wire form, `accept` (the server
//! choosing the table both sides use) and `findRoute`.

use std::fmt;

use super::{
    HandshakeError, MAX_ROUTES, MAX_ROUTING_TABLE_LEN, ROUTE_LEN, ROUTING_TABLE_HEADER_LEN,
};
use crate::reader::{Reader, Truncated};

/// Connection security level (`PRL_SECURITY_LEVEL`, libprlsdk `PrlCommandsFlags.h`).
/// Serialised (relay messages, configs) as `"low"`, `"normal"`, `"high"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum SecurityLevel {
    /// `PSL_LOW_SECURITY`: everything plain (TLS is still negotiated).
    Low = 0,
    /// `PSL_NORMAL_SECURITY`: commands, responses and events through TLS.
    Normal = 1,
    /// `PSL_HIGH_SECURITY`: everything through TLS.
    High = 2,
}

/// A `u32` that is not a [`SecurityLevel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown security level {0}: expected 0 (low), 1 (normal) or 2 (high)")]
pub struct UnknownSecurityLevel(pub u32);

impl UnknownSecurityLevel {
    /// Stable error kind.
    pub fn kind(&self) -> &'static str {
        "unknown_security_level"
    }
}

impl TryFrom<u32> for SecurityLevel {
    type Error = UnknownSecurityLevel;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Self::Low),
            1 => Ok(Self::Normal),
            2 => Ok(Self::High),
            other => Err(UnknownSecurityLevel(other)),
        }
    }
}

impl From<SecurityLevel> for u32 {
    fn from(level: SecurityLevel) -> u32 {
        level as u32
    }
}

/// `IORoutingTable::RouteName`, kept raw (any `u32` can arrive; only `SSL` selects TLS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(pub u32);

impl RouteName {
    /// `UnknownRoute`.
    pub const UNKNOWN: Self = Self(0);
    /// `PlainRoute`: 0xFF records.
    pub const PLAIN: Self = Self(1);
    /// `SSLRoute`: through TLS.
    pub const SSL: Self = Self(2);

    /// Whether data on this route goes through TLS (the writer tests `== SSLRoute` only).
    pub fn is_ssl(self) -> bool {
        self == Self::SSL
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("unknown"),
            1 => f.write_str("plain"),
            2 => f.write_str("ssl"),
            n => write!(f, "route {n}"),
        }
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouteName({self})")
    }
}

/// `IORoutingTable::RouteRequirement`, kept raw (the source treats every non-zero value as
/// required: it only ever tests `== OptionalRoute`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteRequirement(pub u32);

impl RouteRequirement {
    /// `OptionalRoute`.
    pub const OPTIONAL: Self = Self(0);
    /// `RequiredRoute`.
    pub const REQUIRED: Self = Self(1);

    /// `== OptionalRoute`.
    pub fn is_optional(self) -> bool {
        self == Self::OPTIONAL
    }
}

impl fmt::Display for RouteRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("optional"),
            1 => f.write_str("required"),
            n => write!(f, "requirement {n}"),
        }
    }
}

impl fmt::Debug for RouteRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouteRequirement({self})")
    }
}

/// `DirectRangeRoute`: package types `begin..=end` go by `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// `pkgTypeBegin`.
    pub begin: u32,
    /// `pkgTypeEnd` (inclusive).
    pub end: u32,
    /// `routeName`.
    pub name: RouteName,
    /// `routeReq`.
    pub requirement: RouteRequirement,
}

impl Route {
    fn pair(&self) -> (RouteName, RouteRequirement) {
        (self.name, self.requirement)
    }
}

/// `IORoutingTable`: a default route plus at most 20 range routes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutingTable {
    /// `defaultRouteName`; 0 makes the table null.
    pub default_name: RouteName,
    /// `defaultRouteReq`.
    pub default_requirement: RouteRequirement,
    /// The routes, in wire order.
    pub routes: Vec<Route>,
    /// Route names this side knows without a route for them (the third constructor argument of
    /// `IORoutingTable`, e.g. `SSLRoute` in the LOW server table). Never on the wire; used only
    /// by [`RoutingTable::accept`] (`m_routeNameMap`).
    pub extra_route_names: Vec<RouteName>,
}

/// The package type ranges of the NORMAL table, in `IORoutingTableHelper.cpp` order.
const NORMAL_ROUTES: [(u32, u32); 10] = [
    (200_106, 200_106), // PET_IO_CLI_KEYBOARD_SCANCODE
    (200_115, 200_115), // PET_IO_CLI_TOOLS_CLIPBOARD_DATA
    (200_100, 200_100), // PET_IO_CLI_AUTHENTICATE_SESSION
    (200_101, 200_101), // PET_IO_CLI_ATTACH_TO_VM
    (1000, 1999),       // DspClientToVmCommandRange
    (2000, 2999),       // DspClientToDispatcherCommandRange
    (3000, 3999),       // DspVmToClientCommandRange
    (4000, 4999),       // DspCtlCommandRange
    (5000, 5999),       // DspWsCommandRange
    (6000, 7000),       // DispToDispRange
];

/// The routing table header (`IORoutingTable::Header`): default route and route count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TableHeader {
    pub(super) default_name: RouteName,
    pub(super) default_requirement: RouteRequirement,
    /// `routesNumber`, unchecked (see [`RoutingTable::wire_len`]).
    pub(super) routes_number: u8,
}

impl TableHeader {
    /// Reads the 9 header bytes.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, Truncated> {
        Ok(Self {
            default_name: RouteName(r.u32_le("routing table default route name")?),
            default_requirement: RouteRequirement(r.u32_le("routing table default requirement")?),
            routes_number: r.u8("routing table route count")?,
        })
    }
}

impl RoutingTable {
    /// `IORoutingTable(name, requirement)`: only a default route.
    pub fn new(default_name: RouteName, default_requirement: RouteRequirement) -> Self {
        Self {
            default_name,
            default_requirement,
            routes: Vec::new(),
            extra_route_names: Vec::new(),
        }
    }

    fn normal() -> Self {
        let mut t = Self::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        t.routes = NORMAL_ROUTES
            .iter()
            .map(|&(begin, end)| Route {
                begin,
                end,
                name: RouteName::SSL,
                requirement: RouteRequirement::REQUIRED,
            })
            .collect();
        t
    }

    /// `IORoutingTableHelper::GetClientRoutingTable`: LOW = Plain/Required; NORMAL =
    /// Plain/Required + 10 SSL/Required routes; HIGH = SSL/Required.
    pub fn client(level: SecurityLevel) -> Self {
        match level {
            SecurityLevel::Low => Self::new(RouteName::PLAIN, RouteRequirement::REQUIRED),
            SecurityLevel::Normal => Self::normal(),
            SecurityLevel::High => Self::new(RouteName::SSL, RouteRequirement::REQUIRED),
        }
    }

    /// `IORoutingTableHelper::GetServerRoutingTable`: LOW = Plain/Optional knowing SSL;
    /// NORMAL = the client NORMAL table; HIGH = SSL/Required.
    pub fn server(min_level: SecurityLevel) -> Self {
        match min_level {
            SecurityLevel::Low => {
                let mut t = Self::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
                t.extra_route_names.push(RouteName::SSL);
                t
            }
            SecurityLevel::Normal => Self::normal(),
            SecurityLevel::High => Self::new(RouteName::SSL, RouteRequirement::REQUIRED),
        }
    }

    /// `isNull`: the default route name is `UnknownRoute`.
    pub fn is_null(&self) -> bool {
        self.default_name == RouteName::UNKNOWN
    }

    /// `addRoute`: rejects `begin > end`, a full table, a range already present, and a range
    /// whose begin or end lies inside an existing range (exactly the source's overlap test,
    /// which lets a new range enclose an old one).
    pub fn add_route(
        &mut self,
        begin: u32,
        end: u32,
        name: RouteName,
        requirement: RouteRequirement,
    ) -> Result<(), HandshakeError> {
        if begin > end {
            return Err(HandshakeError::InvertedRouteRange { begin, end });
        }
        if self.routes.len() >= MAX_ROUTES {
            return Err(HandshakeError::TooManyRoutes {
                count: self.routes.len() + 1,
            });
        }
        if self.routes.iter().any(|r| r.begin == begin && r.end == end) {
            return Err(HandshakeError::DuplicateRoute { begin, end });
        }
        let inside = |r: &Route, t: u32| r.begin <= t && r.end >= t;
        if self
            .routes
            .iter()
            .any(|r| inside(r, begin) || inside(r, end))
        {
            return Err(HandshakeError::OverlappingRoute { begin, end });
        }
        self.routes.push(Route {
            begin,
            end,
            name,
            requirement,
        });
        Ok(())
    }

    /// `validateHeader`: the full table size implied by `routesNumber`.
    pub fn wire_len(routes_number: u8) -> Result<usize, HandshakeError> {
        let n = usize::from(routes_number);
        if n > MAX_ROUTES {
            return Err(HandshakeError::TooManyRoutes { count: n });
        }
        Ok(ROUTING_TABLE_HEADER_LEN + n * ROUTE_LEN)
    }

    /// Size of this table on the wire.
    pub fn encoded_len(&self) -> usize {
        ROUTING_TABLE_HEADER_LEN + self.routes.len() * ROUTE_LEN
    }

    /// `toBuffer`: appends the wire bytes (fails above 20 routes, like the source).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), HandshakeError> {
        let n = self.routes.len();
        let count = u8::try_from(n)
            .ok()
            .filter(|&c| usize::from(c) <= MAX_ROUTES)
            .ok_or(HandshakeError::TooManyRoutes { count: n })?;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.default_name.0.to_le_bytes());
        out.extend_from_slice(&self.default_requirement.0.to_le_bytes());
        out.push(count);
        for r in &self.routes {
            out.extend_from_slice(&r.begin.to_le_bytes());
            out.extend_from_slice(&r.end.to_le_bytes());
            out.extend_from_slice(&r.name.0.to_le_bytes());
            out.extend_from_slice(&r.requirement.0.to_le_bytes());
        }
        Ok(())
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, HandshakeError> {
        let mut v = Vec::with_capacity(self.encoded_len().min(MAX_ROUTING_TABLE_LEN));
        self.encode(&mut v)?;
        Ok(v)
    }

    /// `fromBuffer`: `bytes` must be exactly the size its header implies; routes are added with
    /// [`RoutingTable::add_route`]. A null table parses (callers check [`RoutingTable::is_null`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HandshakeError> {
        let length = |expected| HandshakeError::RoutingTableLength {
            expected,
            found: bytes.len(),
        };
        let mut r = Reader::new(bytes);
        let header = TableHeader::read(&mut r).map_err(|_| length(ROUTING_TABLE_HEADER_LEN))?;
        let expected = Self::wire_len(header.routes_number)?;
        if bytes.len() != expected {
            return Err(length(expected));
        }
        let mut t = Self::new(header.default_name, header.default_requirement);
        for _ in 0..header.routes_number {
            t.add_route(
                r.u32_le("route first package type")?,
                r.u32_le("route last package type")?,
                RouteName(r.u32_le("route name")?),
                RouteRequirement(r.u32_le("route requirement")?),
            )?;
        }
        r.finish("routing table")?;
        Ok(t)
    }

    /// `m_routeNameMap`: the default name, the extra names and every route's name.
    fn knows(&self, name: RouteName) -> bool {
        self.default_name == name
            || self.extra_route_names.contains(&name)
            || self.routes.iter().any(|r| r.name == name)
    }

    fn route(&self, begin: u32, end: u32) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.begin == begin && r.end == end)
    }

    /// `acceptRoutePair`.
    fn accept_pair(
        &self,
        server: (RouteName, RouteRequirement),
        client: (RouteName, RouteRequirement),
    ) -> Option<(RouteName, RouteRequirement)> {
        if server.1.is_optional() {
            let known = self.knows(client.0);
            if client.1.is_optional() {
                Some(if known { client } else { server })
            } else if known {
                Some(client)
            } else {
                None
            }
        } else if server.0 == client.0 || client.1.is_optional() {
            Some(server)
        } else {
            None
        }
    }

    /// `IORoutingTable::accept`, with `self` the server table: returns the table both sides use
    /// afterwards (the server sends it back). Output routes are the client's ranges in client
    /// order, then the server-only ranges in server order (the source's order is `QHash`
    /// order; peers parse routes as a set).
    ///
    /// Consequences for the helper tables: a LOW server accepts every client and echoes its
    /// table; a NORMAL server accepts only NORMAL clients; a HIGH server only HIGH clients.
    pub fn accept(&self, client: &RoutingTable) -> Result<RoutingTable, HandshakeError> {
        let rejected =
            |at: String, s: (RouteName, RouteRequirement), c: (RouteName, RouteRequirement)| {
                HandshakeError::RoutingTableRejected {
                    at,
                    server_name: s.0,
                    server_requirement: s.1,
                    client_name: c.0,
                    client_requirement: c.1,
                }
            };

        // Default route first of all.
        let server_default = (self.default_name, self.default_requirement);
        let client_default = (client.default_name, client.default_requirement);
        let out_default = self
            .accept_pair(server_default, client_default)
            .ok_or_else(|| rejected("default route".into(), server_default, client_default))?;

        // Merge the server's ranges the client does not list.
        let mut incoming: Vec<Route> = client.routes.clone();
        for s in &self.routes {
            if client.route(s.begin, s.end).is_some() {
                continue;
            }
            let (name, requirement) = if self.default_requirement.is_optional() {
                out_default
            } else {
                server_default
            };
            incoming.push(Route {
                begin: s.begin,
                end: s.end,
                name,
                requirement,
            });
        }

        // Check the incoming routes.
        let mut out = RoutingTable::new(out_default.0, out_default.1);
        for r in &incoming {
            let pair = if let Some(s) = self.route(r.begin, r.end) {
                self.accept_pair(s.pair(), r.pair()).ok_or_else(|| {
                    rejected(
                        format!("route [{}, {}]", r.begin, r.end),
                        s.pair(),
                        r.pair(),
                    )
                })?
            } else if r.requirement.is_optional() {
                if self.knows(r.name) {
                    r.pair()
                } else {
                    out_default
                }
            } else if self.knows(r.name) {
                r.pair()
            } else {
                return Err(rejected(
                    format!("route [{}, {}]", r.begin, r.end),
                    out_default,
                    r.pair(),
                ));
            };
            out.routes.push(Route {
                begin: r.begin,
                end: r.end,
                name: pair.0,
                requirement: pair.1,
            });
        }
        Ok(out)
    }

    /// `findRoute`: an exact single-type route first, then the first range containing the type
    /// (in wire order; the source walks its `QHash`), then the default route.
    pub fn find_route(&self, package_type: u32) -> (RouteName, RouteRequirement) {
        if let Some(r) = self.route(package_type, package_type) {
            return r.pair();
        }
        self.routes
            .iter()
            .find(|r| r.begin <= package_type && r.end >= package_type)
            .map_or((self.default_name, self.default_requirement), Route::pair)
    }

    /// The route name [`RoutingTable::find_route`] picks.
    pub fn route_for(&self, package_type: u32) -> RouteName {
        self.find_route(package_type).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;

    #[test]
    fn add_route_rules() {
        let mut t = RoutingTable::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        let (s, r) = (RouteName::SSL, RouteRequirement::REQUIRED);
        t.add_route(10, 20, s, r).expect("first");
        assert_eq!(
            t.add_route(5, 4, s, r).map_err(|e| e.kind()),
            Err("inverted_route_range")
        );
        assert_eq!(
            t.add_route(10, 20, s, r).map_err(|e| e.kind()),
            Err("duplicate_route")
        );
        assert_eq!(
            t.add_route(15, 30, s, r).map_err(|e| e.kind()),
            Err("overlapping_route")
        );
        assert_eq!(
            t.add_route(0, 10, s, r).map_err(|e| e.kind()),
            Err("overlapping_route")
        );
        // The source's overlap test misses a range enclosing an earlier one.
        t.add_route(0, 100, s, r)
            .expect("enclosing range is allowed by the source");
        for i in 0..18 {
            t.add_route(1000 + i, 1000 + i, s, r).expect("room");
        }
        assert_eq!(
            t.add_route(5000, 5000, s, r).map_err(|e| e.kind()),
            Err("too_many_routes")
        );
    }

    #[test]
    fn find_route_prefers_exact_then_range_then_default() {
        let mut t = RoutingTable::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
        t.add_route(50, 50, RouteName(7), RouteRequirement::REQUIRED)
            .expect("exact");
        t.add_route(0, 100, RouteName::SSL, RouteRequirement::REQUIRED)
            .expect("range");
        assert_eq!(t.route_for(50), RouteName(7));
        assert_eq!(t.route_for(49), RouteName::SSL);
        assert_eq!(
            t.find_route(101),
            (RouteName::PLAIN, RouteRequirement::OPTIONAL)
        );
        let n = RoutingTable::client(SecurityLevel::Normal);
        assert_eq!(n.route_for(2039), RouteName::SSL);
        assert_eq!(n.route_for(5003), RouteName::SSL);
        assert_eq!(n.route_for(10), RouteName::PLAIN);
        assert_eq!(n.route_for(200_106), RouteName::SSL);
        assert_eq!(n.route_for(200_107), RouteName::PLAIN);
        assert_eq!(
            RoutingTable::client(SecurityLevel::High).route_for(10),
            RouteName::SSL
        );
    }

    #[test]
    fn accept_matrix_matches_the_source() {
        use SecurityLevel::*;
        for server in [Low, Normal, High] {
            for client in [Low, Normal, High] {
                let r = RoutingTable::server(server).accept(&RoutingTable::client(client));
                let expect_ok = server == Low || server == client;
                assert_eq!(
                    r.is_ok(),
                    expect_ok,
                    "server {server:?} client {client:?}: {r:?}"
                );
                if let Ok(t) = r {
                    assert_eq!(t, RoutingTable::client(client));
                }
            }
        }
    }

    #[test]
    fn accept_optional_routes() {
        // Server optional default, client optional route with an unknown name: falls back to
        // the accepted default route.
        let server = RoutingTable::server(SecurityLevel::Low);
        let mut client = RoutingTable::new(RouteName::SSL, RouteRequirement::OPTIONAL);
        client
            .add_route(1, 2, RouteName(9), RouteRequirement::OPTIONAL)
            .expect("route");
        client
            .add_route(3, 4, RouteName::SSL, RouteRequirement::OPTIONAL)
            .expect("route");
        let out = server.accept(&client).expect("accepted");
        assert_eq!(out.default_name, RouteName::SSL);
        assert_eq!(
            out.routes[0].pair(),
            (RouteName::SSL, RouteRequirement::OPTIONAL)
        );
        assert_eq!(
            out.routes[1].pair(),
            (RouteName::SSL, RouteRequirement::OPTIONAL)
        );
        // A required route with an unknown name is refused.
        let mut client = RoutingTable::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        client
            .add_route(1, 2, RouteName(9), RouteRequirement::REQUIRED)
            .expect("route");
        assert_eq!(
            server.accept(&client).map_err(|e| e.kind()),
            Err("routing_table_rejected")
        );
        // Server required routes override optional client ones listed for the same range.
        let server = RoutingTable::server(SecurityLevel::Normal);
        let mut client = RoutingTable::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
        for &(b, e) in &NORMAL_ROUTES {
            client
                .add_route(b, e, RouteName::PLAIN, RouteRequirement::OPTIONAL)
                .expect("route");
        }
        let out = server.accept(&client).expect("accepted");
        assert_eq!(out, RoutingTable::client(SecurityLevel::Normal));
        // But ranges the client omits are merged in with the server's *default* pair
        // (Plain/Required), which then conflicts with the server's SSL/Required route.
        let client = RoutingTable::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
        let err = server.accept(&client).expect_err("rejected");
        assert_eq!(err.kind(), "routing_table_rejected");
        assert_eq!(err.prl_code(), ErrorCode::HANDSHAKE_FAILED);
    }
}
