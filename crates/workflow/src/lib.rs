//! # zhudai-workflow — the workflow engine
//!
//! Declarative, versioned definitions ([`definition`]) checked before use and compiled
//! once (guards in the zhudai expression language, CEL syntax), and a pure state machine
//! ([`engine`]) that runs an instance: tasks, approval chains chosen by rules (one of /
//! all of / sequential levels), automatic nodes, waits for outside events, return to an
//! earlier node, transfer, adding an approver before or after, withdrawal and time-outs —
//! with four eyes and separation of duties enforced by the engine itself. No I/O here:
//! the server stores instances (with a version check), schedules time limits on the job
//! queue and writes every step to the audit trail.
//!
//! The default origination flow ships as [`ORIGINATION`].

// Process analytics (issue #6 item 4).
pub mod analytics;
pub mod definition;
pub mod engine;

pub use definition::{Definition, DefinitionSpec, NodeKind, Problem};
pub use engine::{apply, start, Action, Actor, Applied, InstanceState, Refusal, Status, Step};

/// The default loan-origination definition (TOML).
pub const ORIGINATION: &str = include_str!("../definitions/origination.toml");

#[cfg(test)]
mod tests;
