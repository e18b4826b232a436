//! Background workers of the broker (the notification workers stay in `notify/`).

pub mod alerts;
