//! pigeon's intermediate representations, as data: the inter-operator IR (level 1) and, later,
//! the intra-operator kernel plans (level 2), with their text forms, verifiers and shape rules.
//!
//! This crate depends on no other workspace crate.

pub mod entity;
pub mod infer;
pub mod inter;
pub mod shape;

pub use entity::{Arena, EntityId, SecondaryMap};
pub use inter::*;
