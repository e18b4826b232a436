//! Background work that runs beside the HTTP server (notification delivery has its own
//! module, `notify`).

pub mod alerts;
pub mod retention;
