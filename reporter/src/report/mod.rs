//! Reports built from an analysis.

pub mod by_type;
pub mod calltree;
pub mod diff;
pub mod human;
pub mod lines;
pub mod lines_listing;
pub mod load;
pub mod locations;
pub mod module_name;
pub mod modules;
pub mod paint;
pub mod paths;
pub mod short_stacks;
pub mod source_file;
pub mod stack;
pub mod stats;
pub mod summary;
pub mod text;
pub mod text_modes;
pub mod tree;
pub mod tree_json;
pub mod tree_text;
pub mod types;
pub mod view_tree;
pub mod views;
pub mod visible;
