//! The HTML report: a flamegraph of a call tree (inferno), a chart of memory over time
//! (plotters) and the top lines, in one self-contained file that needs no network to view; or
//! the differential flamegraph of two captures.

pub mod app;
pub mod callers;
pub mod data;
pub mod diff_fold;
pub mod diff_svg;
pub mod fold;
pub mod html;
pub mod page;
pub mod report;
pub mod svg;
pub mod timeline;
