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
use crate::report::path_tree::{NodeId, PathTree, ROOT};

/// One stack's allocations, its locations whole (to make [`Sites`] of).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The stack's locations, outermost first (empty: no stack known).
    pub frames: Vec<Location>,
    /// Every allocation of the run made with this stack.
    pub allocated: Sum,
    /// What of it was live at the moment of the view.
    pub live: Sum,
}

/// One stack's allocations, its locations a path of [`Sites::paths`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathSite {
    /// The node of the stack's path (the root: no stack known).
    pub node: NodeId,
    pub allocated: Sum,
    pub live: Sum,
}

/// The allocation sites of a view: their paths share their common parts (deep stacks would
/// take their depth times their number in locations each whole).
#[derive(Clone, Debug, Default)]
pub struct Sites {
    pub paths: PathTree,
    pub list: Vec<PathSite>,
}

impl Sites {
    /// Adds a site given whole.
    pub fn push(&mut self, site: &Site) {
        let node = self.paths.descend(ROOT, &site.frames);
        self.list.push(PathSite {
            node,
            allocated: site.allocated,
            live: site.live,
        });
    }

    /// A site's locations, outermost first.
    pub fn frames(&self, site: &PathSite) -> Vec<&Location> {
        self.paths.locations(site.node)
    }

    /// A site's innermost location (None: no stack known).
    pub fn innermost(&self, site: &PathSite) -> Option<&Location> {
        self.paths.location(site.node)
    }

    /// The location a site's allocations are counted at: its innermost one, or past the
    /// allocator wrappers inside it (`operator new`, `strdup`, Rust's `alloc`: see
    /// [`crate::report::locations::is_allocator_wrapper`]) when anything is left (None: no
    /// stack known).
    pub fn location(&self, site: &PathSite) -> Option<&Location> {
        let innermost = self.innermost(site)?;
        if !innermost.is_allocator_wrapper() {
            return Some(innermost);
        }
        let mut frames = self.frames(site);
        frames.reverse();
        let at = crate::report::locations::past_wrappers(&frames, |l| l.is_allocator_wrapper());
        Some(frames.get(at).copied().unwrap_or(innermost))
    }

    /// Adds `other`'s sites, each under `location` (a family's process).
    pub fn graft(&mut self, location: &Location, other: &Sites) {
        let at = self.paths.child(ROOT, location);
        let moved = self.paths.graft(at, &other.paths);
        self.list.extend(other.list.iter().map(|s| PathSite {
            node: moved[s.node],
            ..*s
        }));
    }
}

impl FromIterator<Site> for Sites {
    fn from_iter<I: IntoIterator<Item = Site>>(sites: I) -> Sites {
        let mut all = Sites::default();
        for s in sites {
            all.push(&s);
        }
        all
    }
}

/// The name a frame shows in formats that want one string per frame.
pub fn frame_name(l: &Location) -> &str {
    &l.label
}
