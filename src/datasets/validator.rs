//! Validators of a dataset's content (`ETag`, `Last-Modified`) computed from the ids and
//! modification times of what it selects, without rendering it: an unchanged dataset is
//! answered 304 at the cost of one index pass.

use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::flat::source::Pages;
use crate::flat::FlatRequest;
use crate::store::SharedStore;

pub struct Validators {
    pub etag: String,
    /// The latest modification (broker time format).
    pub last_modified: String,
}

/// `extra` covers what else shapes the content (the definition, the format, the window).
pub async fn compute(store: &SharedStore, req: &FlatRequest, extra: &str) -> Result<Validators> {
    let mut h = Sha256::new();
    h.update(extra.as_bytes());
    let mut last = String::new();
    let mut pages = Pages::new(store, &req.tenant, &req.query);
    while let Some(page) = pages.next().await? {
        for e in page {
            h.update(e.id.as_bytes());
            h.update([0]);
            h.update(e.modified_at.as_bytes());
            h.update([0]);
            if e.modified_at > last {
                last = e.modified_at;
            }
        }
    }
    Ok(Validators {
        etag: format!("\"{}\"", &hex::encode(h.finalize())[..32]),
        last_modified: last,
    })
}
