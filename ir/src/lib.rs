//! pigeon's intermediate representations, as data: the inter-operator IR (level 1) and, later,
//! the intra-operator kernel plans (level 2), with their text forms, verifiers and shape rules.
//!
//! This crate depends on no other workspace crate.

pub mod builder;
pub mod dot;
pub mod entity;
pub mod error;
pub mod infer;
pub mod inter;
pub mod parse;
pub mod plan;
pub mod plan_parse;
pub mod plan_text;
pub mod plan_verify;
pub mod shape;
pub mod stats;
pub mod text;
pub mod verify;

pub use builder::ModuleBuilder;
pub use dot::to_dot;
pub use entity::{Arena, EntityId, SecondaryMap};
pub use error::IrError;
pub use inter::*;
pub use parse::parse_module;
pub use plan_parse::parse_plan;
pub use plan_text::print_plan;
pub use plan_verify::verify_plan;
pub use stats::GraphStats;
pub use text::print;
pub use verify::{verify, Location, VerifyError};
