//! Reports built from an analysis.

pub mod human;
pub mod locations;
pub mod stats;
pub mod text;
