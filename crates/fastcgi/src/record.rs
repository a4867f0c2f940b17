//! Record header layout and the constants of the FastCGI 1.0 specification.

/// Largest content a single record can carry.
pub const MAX_CONTENT_LEN: usize = 65_535;

/// Record types of FastCGI 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// FCGI_BEGIN_REQUEST (1)
    BeginRequest,
    /// FCGI_ABORT_REQUEST (2)
    AbortRequest,
    /// FCGI_END_REQUEST (3)
    EndRequest,
    /// FCGI_PARAMS (4)
    Params,
    /// FCGI_STDIN (5)
    Stdin,
    /// FCGI_STDOUT (6)
    Stdout,
    /// FCGI_STDERR (7)
    Stderr,
    /// FCGI_DATA (8)
    Data,
    /// FCGI_GET_VALUES (9)
    GetValues,
    /// FCGI_GET_VALUES_RESULT (10)
    GetValuesResult,
    /// FCGI_UNKNOWN_TYPE (11)
    UnknownType,
    /// Any other type byte.
    Other(u8),
}

/// FastCGI roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// FCGI_RESPONDER (1): the only role web servers use.
    Responder,
    /// FCGI_AUTHORIZER (2)
    Authorizer,
    /// FCGI_FILTER (3)
    Filter,
}

/// protocolStatus of END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// FCGI_REQUEST_COMPLETE (0)
    RequestComplete,
    /// FCGI_CANT_MPX_CONN (1)
    CantMpxConn,
    /// FCGI_OVERLOADED (2)
    Overloaded,
    /// FCGI_UNKNOWN_ROLE (3)
    UnknownRole,
    /// Any other value.
    Other(u8),
}
