//! The machine's own limits, measured in the same run as the broker so that
//! each broker figure can be given as a fraction of what this machine can do
//! at all: HTTP with a trivial actix-web handler, and SQLite inserts with no
//! broker logic around them.

mod bare_sqlite;
mod trivial_http;

pub use bare_sqlite::BareSqlite;
pub use trivial_http::TrivialHttp;
