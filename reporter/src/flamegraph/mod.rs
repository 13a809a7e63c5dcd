//! The HTML report: a flamegraph of a call tree (inferno), a chart of memory over time
//! (plotters) and the top lines, in one self-contained file that needs no network to view.

pub mod fold;
pub mod html;
pub mod page;
pub mod svg;
pub mod timeline;
