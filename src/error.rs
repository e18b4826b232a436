//! The broker's error kinds, and the one table that maps them to NGSI-LD ProblemDetails.
//!
//! Every layer returns [`NgsiError`]; only `api::problem` turns it into an HTTP response.

use thiserror::Error;

/// The NGSI-LD error types (ETSI GS CIM 009, clause 5.5.2), plus the few HTTP-level kinds
/// (payload too large, not acceptable, unsupported media type) the spec leaves to HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    BadRequestData,
    AlreadyExists,
    OperationNotSupported,
    ResourceNotFound,
    InternalError,
    TooComplexQuery,
    TooManyResults,
    LdContextNotAvailable,
    NoMultiTenantSupport,
    NonexistentTenant,
    Conflict,
    NotAcceptable,
    UnsupportedMediaType,
    PayloadTooLarge,
    MethodNotAllowed,
    LengthRequired,
    /// Admin API: no credentials.
    Unauthorized,
    /// Admin API and protected datasets: credentials that do not grant this.
    Forbidden,
}

/// One row per kind: type URI, HTTP status, title.
impl ErrorKind {
    pub fn type_uri(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidRequest => "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest",
            BadRequestData => "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            AlreadyExists => "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists",
            OperationNotSupported => "https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported",
            ResourceNotFound => "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
            InternalError => "https://uri.etsi.org/ngsi-ld/errors/InternalError",
            TooComplexQuery => "https://uri.etsi.org/ngsi-ld/errors/TooComplexQuery",
            TooManyResults => "https://uri.etsi.org/ngsi-ld/errors/TooManyResults",
            LdContextNotAvailable => "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable",
            NoMultiTenantSupport => "https://uri.etsi.org/ngsi-ld/errors/NoMultiTenantSupport",
            NonexistentTenant => "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant",
            Conflict => "https://uri.etsi.org/ngsi-ld/errors/Conflict",
            NotAcceptable => "https://uri.etsi.org/ngsi-ld/errors/NotAcceptable",
            UnsupportedMediaType => "https://uri.etsi.org/ngsi-ld/errors/UnsupportedMediaType",
            PayloadTooLarge => "https://uri.etsi.org/ngsi-ld/errors/PayloadTooLarge",
            MethodNotAllowed => "https://uri.etsi.org/ngsi-ld/errors/MethodNotAllowed",
            LengthRequired => "https://uri.etsi.org/ngsi-ld/errors/LengthRequired",
            // Outside NGSI-LD (it defines no authentication errors): our own types.
            Unauthorized => "urn:calanque:errors:Unauthorized",
            Forbidden => "urn:calanque:errors:Forbidden",
        }
    }

    pub fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            InvalidRequest | BadRequestData => 400,
            AlreadyExists | Conflict => 409,
            OperationNotSupported => 422,
            ResourceNotFound | NonexistentTenant => 404,
            InternalError => 500,
            TooComplexQuery | TooManyResults => 403,
            // 504 since NGSI-LD 1.9.1 (a gateway could not fetch it); 1.8 said 503.
            LdContextNotAvailable => 504,
            NoMultiTenantSupport => 501,
            NotAcceptable => 406,
            UnsupportedMediaType => 415,
            PayloadTooLarge => 413,
            MethodNotAllowed => 405,
            LengthRequired => 411,
            Unauthorized => 401,
            Forbidden => 403,
        }
    }

    pub fn title(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidRequest => "Invalid request",
            BadRequestData => "Bad request data",
            AlreadyExists => "Already exists",
            OperationNotSupported => "Operation not supported",
            ResourceNotFound => "Resource not found",
            InternalError => "Internal error",
            TooComplexQuery => "Too complex query",
            TooManyResults => "Too many results",
            LdContextNotAvailable => "JSON-LD context not available",
            NoMultiTenantSupport => "No multi-tenant support",
            NonexistentTenant => "Nonexistent tenant",
            Conflict => "Conflict",
            NotAcceptable => "Not acceptable",
            UnsupportedMediaType => "Unsupported media type",
            PayloadTooLarge => "Payload too large",
            MethodNotAllowed => "Method not allowed",
            LengthRequired => "Length required",
            Unauthorized => "Unauthorized",
            Forbidden => "Forbidden",
        }
    }
}

/// An error with its NGSI-LD kind and a detail a person can act on.
#[derive(Debug, Clone, Error)]
#[error("{kind:?}: {detail}")]
pub struct NgsiError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl NgsiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
    pub fn bad_data(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequestData, detail)
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, detail)
    }
    pub fn already_exists(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, detail)
    }
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationNotSupported, detail)
    }
    /// An internal failure: the detail is logged, the client sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorKind::InternalError,
            "the broker failed to complete the request; see its log",
        )
    }
}

pub type Result<T, E = NgsiError> = std::result::Result<T, E>;
