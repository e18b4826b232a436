//! The NGSI-LD information model: entities, attributes, identifiers and the operations
//! on them. Knows neither HTTP nor SQL.

pub mod attribute;
pub mod entity;
pub mod geo;
pub mod ids;
pub mod operations;
pub mod order;
pub mod percent;
pub mod projection;
pub mod q;
pub mod query;
pub mod rename;
pub mod render;
pub mod render_stored;
pub mod retention;
pub mod scope;
pub mod subscription;
pub mod temporal;
pub mod time;
pub mod type_expr;

pub use entity::{Entity, EntityFragment};
pub use ids::Tenant;
