//! Reading the entities an export covers, a page at a time.

use crate::error::Result;
use crate::ngsi::query::EntityQuery;
use crate::ngsi::{Entity, Tenant};
use crate::store::SharedStore;

pub const PAGE: usize = 500;

pub struct Pages<'a> {
    store: &'a SharedStore,
    tenant: &'a Tenant,
    query: EntityQuery,
    done: bool,
}

impl<'a> Pages<'a> {
    pub fn new(store: &'a SharedStore, tenant: &'a Tenant, query: &EntityQuery) -> Self {
        let mut query = query.clone();
        query.limit = PAGE;
        query.offset = 0;
        query.count = false;
        Self {
            store,
            tenant,
            query,
            done: false,
        }
    }

    pub async fn next(&mut self) -> Result<Option<Vec<Entity>>> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.query(self.tenant, &self.query).await?.items;
        self.query.offset += page.len();
        self.done = page.len() < PAGE;
        Ok((!page.is_empty()).then_some(page))
    }
}
