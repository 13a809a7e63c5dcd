//! Standard formats other tools read: collapsed stacks (flamegraph.pl, inferno), speedscope's
//! JSON, pprof's gzipped protobuf profile and a CSV table. Each writer takes the same input: the
//! allocation sites of a capture, each a stack of resolved locations with what it allocated over
//! the run and what of it was live at the moment a view looks at (the peak, the exit, ...).

pub mod csv;
pub mod folded;
pub mod pprof;
pub mod sites;
pub mod speedscope;

use crate::analysis::totals::Sum;
use crate::report::locations::Location;

/// One stack's allocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The stack's locations, outermost first (empty: no stack known).
    pub frames: Vec<Location>,
    /// Every allocation of the run made with this stack.
    pub allocated: Sum,
    /// What of it was live at the moment of the view.
    pub live: Sum,
}

/// The name a frame shows in formats that want one string per frame.
pub fn frame_name(l: &Location) -> &str {
    &l.label
}
