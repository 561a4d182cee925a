//! The route handlers, one module per API surface.

pub mod adapters;
pub mod models;
pub mod ollama;
pub mod openai;
pub mod system;
