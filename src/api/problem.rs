//! The one place an error becomes an HTTP response: RFC 7807 ProblemDetails with the
//! NGSI-LD error type.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::error::{ErrorKind, NgsiError};

impl ResponseError for NgsiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.kind == ErrorKind::Unauthorized {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        res.content_type("application/json")
            .json(problem_body(self.kind, &self.detail))
    }
}

pub fn problem_body(kind: ErrorKind, detail: &str) -> serde_json::Value {
    json!({ "type": kind.type_uri(), "title": kind.title(), "status": kind.status(), "detail": detail })
}
