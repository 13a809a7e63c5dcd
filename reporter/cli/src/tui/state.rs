//! What the view shows and where the user is: the displayed tree, the expanded nodes, the visible
//! rows, the selection and scroll position, the search and the prompt line. Keys become
//! [`Action`]s; this module applies them without touching the terminal, so it is tested alone.

use super::display::{is_import_machinery, Filtered, PreOrder};
use memtrace_reporter::report::calltree::{CallTree, NodeId, ROOT};

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Expand a collapsed node, collapse an expanded one.
    Toggle,
    /// Expand; on an expanded node, go to its first child.
    Expand,
    /// Collapse; on a collapsed node or a leaf, go to its parent.
    Collapse,
    /// Expand the selected node's whole subtree.
    ExpandAll,
    /// Open the search prompt.
    Search,
    Next,
    Previous,
    ToggleImports,
    Quit,
    /// Prompt editing.
    Input(char),
    Erase,
    Submit,
    Cancel,
}

/// A search that was submitted: its text and the matching nodes in pre-order.
pub struct Search {
    pub query: String,
    matches: Vec<NodeId>,
    /// Per displayed node, whether it matches (for highlighting rows).
    is_match: Vec<bool>,
}

pub struct State {
    original: CallTree,
    original_order: PreOrder,
    /// The tree without import machinery, made the first time it is asked for.
    filtered: Option<Filtered>,
    /// Whether the filtered tree is the one shown.
    hide_imports: bool,
    /// Per displayed node.
    expanded: Vec<bool>,
    /// Visible rows, top to bottom: the root, then expanded nodes' children.
    rows: Vec<NodeId>,
    /// The selected row.
    cursor: usize,
    /// The first row on screen.
    offset: usize,
    /// Rows that fit on screen (set by the renderer).
    height: usize,
    /// The search prompt being typed, if open.
    prompt: Option<String>,
    search: Option<Search>,
    /// A one-line note for the status bar, until the next key.
    message: Option<String>,
    quit: bool,
}

impl State {
    /// Opens on the biggest path, expanded, with its leaf selected.
    pub fn new(tree: CallTree) -> State {
        let mut state = State {
            expanded: vec![false; tree.nodes.len()],
            original_order: PreOrder::of(&tree),
            original: tree,
            filtered: None,
            hide_imports: false,
            rows: Vec::new(),
            cursor: 0,
            offset: 0,
            height: 20,
            prompt: None,
            search: None,
            message: None,
            quit: false,
        };
        let path = state.tree().biggest_path();
        let target = path.last().copied().unwrap_or(ROOT);
        state.reveal(target);
        state
    }

    /// The tree shown.
    pub fn tree(&self) -> &CallTree {
        self.shown_filter().map_or(&self.original, |f| &f.tree)
    }

    fn order(&self) -> &PreOrder {
        self.shown_filter()
            .map_or(&self.original_order, |f| &f.order)
    }

    /// The filtered tree when it is the one shown.
    fn shown_filter(&self) -> Option<&Filtered> {
        self.filtered.as_ref().filter(|_| self.hide_imports)
    }

    pub fn rows(&self) -> &[NodeId] {
        &self.rows
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn selected(&self) -> NodeId {
        self.rows.get(self.cursor).copied().unwrap_or(ROOT)
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn is_expanded(&self, id: NodeId) -> bool {
        self.expanded[id]
    }

    pub fn hides_imports(&self) -> bool {
        self.hide_imports
    }

    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    pub fn search(&self) -> Option<&Search> {
        self.search.as_ref()
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn quit(&self) -> bool {
        self.quit
    }

    pub fn is_match(&self, id: NodeId) -> bool {
        self.search
            .as_ref()
            .is_some_and(|s| s.is_match.get(id).copied().unwrap_or(false))
    }

    /// Tells how many rows fit on screen, and scrolls to keep the selection in view.
    pub fn set_height(&mut self, height: usize) {
        self.height = height.max(1);
        self.scroll();
    }

    pub fn apply(&mut self, action: Action) {
        if self.prompt.is_some() {
            self.edit(action);
            return;
        }
        self.message = None;
        let page = self.height.saturating_sub(1).max(1);
        let last = self.rows.len().saturating_sub(1);
        match action {
            Action::Up => self.cursor = self.cursor.saturating_sub(1),
            Action::Down => self.cursor = (self.cursor + 1).min(last),
            Action::PageUp => self.cursor = self.cursor.saturating_sub(page),
            Action::PageDown => self.cursor = (self.cursor + page).min(last),
            Action::Home => self.cursor = 0,
            Action::End => self.cursor = last,
            Action::Toggle => {
                let id = self.selected();
                self.set_expanded(id, !self.expanded[id]);
            }
            Action::Expand => {
                let id = self.selected();
                if self.expanded[id] {
                    if !self.tree().nodes[id].children.is_empty() {
                        self.cursor += 1;
                    }
                } else {
                    self.set_expanded(id, true);
                }
            }
            Action::Collapse => {
                let id = self.selected();
                if self.expanded[id] && !self.tree().nodes[id].children.is_empty() {
                    self.set_expanded(id, false);
                } else if let Some(parent) = self.tree().nodes[id].parent {
                    self.select(parent);
                }
            }
            Action::ExpandAll => self.expand_all(self.selected()),
            Action::Search => self.prompt = Some(String::new()),
            Action::Next => self.step(true),
            Action::Previous => self.step(false),
            Action::ToggleImports => self.toggle_imports(),
            Action::Quit => self.quit = true,
            // Prompt keys outside the prompt do nothing.
            Action::Input(_) | Action::Erase | Action::Submit | Action::Cancel => {}
        }
        self.scroll();
    }

    fn edit(&mut self, action: Action) {
        let Some(text) = self.prompt.as_mut() else {
            return;
        };
        match action {
            Action::Input(c) => text.push(c),
            Action::Erase => {
                text.pop();
            }
            Action::Cancel => self.prompt = None,
            Action::Submit => {
                let query = text.trim().to_string();
                self.prompt = None;
                if query.is_empty() {
                    self.search = None;
                } else {
                    self.search = Some(self.find(query));
                    self.step(true);
                }
            }
            Action::Quit => self.quit = true,
            _ => {}
        }
        self.scroll();
    }

    /// Every shown node whose function or file contains the query, ignoring case. Without a file
    /// the label counts too: it names the module of a native function, the address of an
    /// unresolved frame, the thread of a per-thread node.
    fn find(&self, query: String) -> Search {
        let needle = Needle::new(&query);
        let contains = |s: Option<&String>| s.is_some_and(|s| needle.found_in(s));
        let tree = self.tree();
        let mut is_match = vec![false; tree.nodes.len()];
        let mut matches = Vec::new();
        for &id in self.order().nodes() {
            if let Some(loc) = &tree.nodes[id].location {
                let found = contains(loc.function.as_ref())
                    || contains(loc.file.as_ref())
                    || (loc.file.is_none() && needle.found_in(&loc.label));
                if found {
                    is_match[id] = true;
                    matches.push(id);
                }
            }
        }
        Search {
            query,
            matches,
            is_match,
        }
    }

    /// Goes to the next (or previous) match after the selection in pre-order, wrapping around.
    fn step(&mut self, forward: bool) {
        let Some(search) = &self.search else {
            self.message = Some("no search: press / to search".to_string());
            return;
        };
        let order = self.order();
        let here = order.place(self.selected());
        let places: Vec<usize> = search.matches.iter().map(|&m| order.place(m)).collect();
        let found = if forward {
            places.iter().position(|&p| p > here).or(Some(0))
        } else {
            places
                .iter()
                .rposition(|&p| p < here)
                .or(places.len().checked_sub(1))
        };
        match found.filter(|_| !places.is_empty()) {
            Some(i) => {
                let target = search.matches[i];
                let total = search.matches.len();
                self.message = Some(format!("match {} of {total}", i + 1));
                self.reveal(target);
            }
            None => self.message = Some(format!("no match for \"{}\"", search.query)),
        }
    }

    fn set_expanded(&mut self, id: NodeId, on: bool) {
        if self.expanded[id] != on {
            self.expanded[id] = on;
            self.relayout(id);
        }
    }

    fn expand_all(&mut self, id: NodeId) {
        let mut todo = vec![id];
        while let Some(n) = todo.pop() {
            let children = &self.tree().nodes[n].children;
            if !children.is_empty() {
                todo.extend(children.iter().copied());
                self.expanded[n] = true;
            }
        }
        self.relayout(id);
    }

    /// Expands the ancestors of a node and selects it.
    fn reveal(&mut self, id: NodeId) {
        let mut changed = false;
        let mut at = self.tree().nodes[id].parent;
        while let Some(p) = at {
            changed |= !self.expanded[p];
            self.expanded[p] = true;
            at = self.tree().nodes[p].parent;
        }
        // Laying out a large expanded tree again costs: only when something opened.
        if changed || self.rows.is_empty() {
            self.relayout(id);
        } else {
            self.select(id);
        }
        self.scroll_to_middle();
    }

    fn select(&mut self, id: NodeId) {
        if let Some(row) = self.rows.iter().position(|&r| r == id) {
            self.cursor = row;
        }
    }

    /// Rebuilds the visible rows, keeping `keep` selected.
    fn relayout(&mut self, keep: NodeId) {
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        let tree = self.tree();
        let mut todo = vec![ROOT];
        while let Some(id) = todo.pop() {
            rows.push(id);
            if self.expanded[id] {
                todo.extend(tree.nodes[id].children.iter().rev());
            }
        }
        self.rows = rows;
        self.cursor = 0;
        self.select(keep);
    }

    fn toggle_imports(&mut self) {
        let shown = self.shown_filter();
        let to_original = |id: NodeId| shown.map_or(id, |f| f.origin(id));
        let original_selected = to_original(self.selected());
        // Expanded state, carried through the original tree's nodes.
        let expanded_originals: Vec<bool> = (0..self.original.nodes.len())
            .map(|o| self.expanded[shown.map_or(o, |f| f.shown_as(o))])
            .collect();
        self.hide_imports = !self.hide_imports;
        if self.hide_imports && self.filtered.is_none() {
            self.filtered = Some(Filtered::without(&self.original, is_import_machinery));
        }
        let shown = self.shown_filter();
        let from_original = |o: NodeId| shown.map_or(o, |f| f.shown_as(o));
        let mut expanded = vec![false; self.tree().nodes.len()];
        for (o, &on) in expanded_originals.iter().enumerate() {
            if on && !shown.is_some_and(|f| f.is_left_out(o)) {
                expanded[from_original(o)] = true;
            }
        }
        let target = from_original(original_selected);
        let message = match shown {
            Some(f) => format!("import machinery hidden ({} frames)", f.left_out_count()),
            None => "import machinery shown".to_string(),
        };
        self.expanded = expanded;
        self.search = self.search.take().map(|s| self.find(s.query));
        self.message = Some(message);
        self.rows.clear();
        self.reveal(target);
    }

    /// After the tree was built again from newer data (`memtrace live`): takes over from `old`
    /// the nodes it had expanded and its selection (found again by their locations, the
    /// selection falling back on its nearest ancestor still there), its scroll position, search,
    /// prompt and import filter.
    pub fn carry(&mut self, old: &State) {
        if old.hide_imports != self.hide_imports {
            self.toggle_imports();
        }
        let old_tree = old.tree();
        let mut expanded = vec![false; self.tree().nodes.len()];
        expanded[ROOT] = old.expanded[ROOT];
        for (id, _) in old.expanded.iter().enumerate().filter(|(_, &on)| on) {
            if let (Some(n), true) = self.find_from(old_tree, id) {
                expanded[n] = true;
            }
        }
        let target = self.find_from(old_tree, old.selected()).0.unwrap_or(ROOT);
        self.expanded = expanded;
        self.search = old.search.as_ref().map(|s| self.find(s.query.clone()));
        self.prompt = old.prompt.clone();
        self.message = old.message.clone();
        self.quit = old.quit;
        self.height = old.height;
        self.offset = old.offset;
        self.relayout(target);
        self.scroll();
    }

    /// The node of this tree at the locations of `id` in `other`: (the node or its deepest
    /// ancestor found, whether it is the node itself).
    fn find_from(&self, other: &CallTree, id: NodeId) -> (Option<NodeId>, bool) {
        let tree = self.tree();
        let mut at = ROOT;
        for step in other.path_to(id) {
            let want = &other.nodes[step].location;
            match tree.nodes[at]
                .children
                .iter()
                .find(|&&c| tree.nodes[c].location == *want)
            {
                Some(&c) => at = c,
                None => return (Some(at), false),
            }
        }
        (Some(at), true)
    }

    /// Keeps the selection on screen.
    fn scroll(&mut self) {
        self.cursor = self.cursor.min(self.rows.len().saturating_sub(1));
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + self.height {
            self.offset = self.cursor + 1 - self.height;
        }
        // No blank space below the last row while rows are scrolled off above.
        let max_offset = self.rows.len().saturating_sub(self.height);
        self.offset = self.offset.min(max_offset);
    }

    /// After a jump: the selection in the middle of the screen when it was off screen.
    fn scroll_to_middle(&mut self) {
        if self.cursor < self.offset || self.cursor >= self.offset + self.height {
            self.offset = self.cursor.saturating_sub(self.height / 2);
        }
        self.scroll();
    }
}

/// A search text, matched ignoring case without allocating per candidate when it is ASCII.
struct Needle {
    lower: String,
    ascii: bool,
}

impl Needle {
    fn new(query: &str) -> Needle {
        Needle {
            lower: query.to_lowercase(),
            ascii: query.is_ascii(),
        }
    }

    fn found_in(&self, hay: &str) -> bool {
        if self.ascii {
            let n = self.lower.as_bytes();
            return n.is_empty()
                || hay
                    .as_bytes()
                    .windows(n.len())
                    .any(|w| w.eq_ignore_ascii_case(n));
        }
        hay.to_lowercase().contains(&self.lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::display::tests::{loc, tree_with_imports};
    use memtrace_reporter::report::calltree::StackAllocations;
    use memtrace_reporter::report::locations::Location;

    fn function(state: &State, id: NodeId) -> String {
        match &state.tree().nodes[id].location {
            Some(l) => format!(
                "{}@{}",
                l.function.as_deref().unwrap_or("?"),
                l.file.as_deref().unwrap_or("?")
            ),
            None => "root".to_string(),
        }
    }

    fn rows(state: &State) -> Vec<String> {
        state.rows().iter().map(|&id| function(state, id)).collect()
    }

    fn selected(state: &State) -> String {
        function(state, state.selected())
    }

    fn run(state: &mut State, actions: &[Action]) {
        for &a in actions {
            state.apply(a);
        }
    }

    fn type_search(state: &mut State, text: &str) {
        state.apply(Action::Search);
        for c in text.chars() {
            state.apply(Action::Input(c));
        }
        state.apply(Action::Submit);
    }

    #[test]
    fn opens_on_the_biggest_path_with_its_leaf_selected() {
        let state = State::new(tree_with_imports());
        // <module> (255) → _find_and_load (105) → _load_unlocked → lib <module> → table.
        assert_eq!(
            rows(&state),
            [
                "root",
                "<module>@app.py",
                "_find_and_load@<frozen importlib._bootstrap>",
                "_load_unlocked@<frozen importlib._bootstrap>",
                "<module>@lib.py",
                "table@lib.py",
                "main@app.py",
                "_handle_fromlist@<frozen importlib._bootstrap>",
            ]
        );
        assert_eq!(selected(&state), "table@lib.py");
    }

    #[test]
    fn an_empty_tree_opens_on_its_root() {
        let mut state = State::new(CallTree::new());
        assert_eq!(rows(&state), ["root"]);
        run(
            &mut state,
            &[
                Action::Down,
                Action::Collapse,
                Action::Toggle,
                Action::End,
                Action::ExpandAll,
            ],
        );
        assert_eq!(state.cursor(), 0);
        type_search(&mut state, "x");
        assert_eq!(state.message(), Some("no match for \"x\""));
    }

    #[test]
    fn moves_and_stops_at_the_ends() {
        let mut state = State::new(tree_with_imports());
        run(&mut state, &[Action::Home, Action::Up]);
        assert_eq!(state.cursor(), 0);
        run(&mut state, &[Action::Down, Action::Down]);
        assert_eq!(
            selected(&state),
            "_find_and_load@<frozen importlib._bootstrap>"
        );
        run(&mut state, &[Action::End, Action::Down]);
        assert_eq!(state.cursor(), 7);
        state.set_height(3);
        run(&mut state, &[Action::PageUp]);
        assert_eq!(state.cursor(), 5);
        assert!(state.offset() <= 5 && state.offset() + 3 > 5);
        run(&mut state, &[Action::PageDown, Action::PageDown]);
        assert_eq!(state.cursor(), 7);
        assert_eq!(state.offset(), 5);
    }

    #[test]
    fn expands_collapses_and_goes_to_the_parent() {
        let mut state = State::new(tree_with_imports());
        // On the leaf: ← goes to its parent, ← again collapses it.
        run(&mut state, &[Action::Collapse]);
        assert_eq!(selected(&state), "<module>@lib.py");
        run(&mut state, &[Action::Collapse]);
        assert_eq!(rows(&state).len(), 7);
        assert!(!state.is_expanded(state.selected()));
        // → expands, → again goes to the first child.
        run(&mut state, &[Action::Expand]);
        assert_eq!(rows(&state).len(), 8);
        run(&mut state, &[Action::Expand]);
        assert_eq!(selected(&state), "table@lib.py");
        // Enter toggles the top frame: everything below folds away, the selection stays on it.
        run(&mut state, &[Action::Home, Action::Down, Action::Toggle]);
        assert_eq!(rows(&state), ["root", "<module>@app.py"]);
        assert_eq!(selected(&state), "<module>@app.py");
        // Expanding it again shows its children as they were.
        run(&mut state, &[Action::Toggle]);
        assert_eq!(rows(&state).len(), 8);
    }

    #[test]
    fn e_expands_the_whole_subtree() {
        let mut state = State::new(tree_with_imports());
        run(&mut state, &[Action::End]);
        assert_eq!(
            selected(&state),
            "_handle_fromlist@<frozen importlib._bootstrap>"
        );
        run(&mut state, &[Action::ExpandAll]);
        assert_eq!(
            rows(&state)[7..],
            [
                "_handle_fromlist@<frozen importlib._bootstrap>",
                "<module>@lib.py",
                "table@lib.py",
            ]
        );
        assert_eq!(state.cursor(), 7);
    }

    #[test]
    fn searches_functions_and_files_and_steps_through_matches() {
        let mut state = State::new(tree_with_imports());
        run(&mut state, &[Action::Home]);
        // Collapse everything first: the search must expand the way to its match.
        run(&mut state, &[Action::Down, Action::Toggle, Action::Home]);
        type_search(&mut state, "TABLE");
        assert_eq!(state.prompt(), None);
        assert_eq!(selected(&state), "table@lib.py");
        assert_eq!(state.message(), Some("match 1 of 2"));
        assert!(state.is_match(state.selected()));
        run(&mut state, &[Action::Next]);
        assert_eq!(state.message(), Some("match 2 of 2"));
        assert_eq!(selected(&state), "table@lib.py");
        // The second table is under _handle_fromlist, now expanded to show it.
        let parent = state.tree().nodes[state.selected()].parent.unwrap_or(ROOT);
        let grandparent = state.tree().nodes[parent].parent.unwrap_or(ROOT);
        assert_eq!(
            function(&state, grandparent),
            "_handle_fromlist@<frozen importlib._bootstrap>"
        );
        run(&mut state, &[Action::Next]);
        assert_eq!(state.message(), Some("match 1 of 2"));
        run(&mut state, &[Action::Previous]);
        assert_eq!(state.message(), Some("match 2 of 2"));
        // A file name matches too.
        type_search(&mut state, "lib.py");
        assert_eq!(selected(&state), "<module>@lib.py");
    }

    #[test]
    fn labels_count_for_frames_without_a_file() {
        let native = Location {
            function: Some("malloc_thing".to_string()),
            file: None,
            line: None,
            label: "malloc_thing in libfoo.so".to_string(),
        };
        let unresolved = Location {
            function: None,
            file: None,
            line: None,
            label: "libbar.so+0x1234".to_string(),
        };
        let a = [loc("<module>", "app.py", 1), native];
        let b = [unresolved];
        let tree = CallTree::build([
            StackAllocations {
                frames: &a,
                bytes: 10,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &b,
                bytes: 5,
                allocations: 1,
                thread: 1,
            },
        ]);
        let mut state = State::new(tree);
        type_search(&mut state, "libfoo");
        assert_eq!(state.message(), Some("match 1 of 1"));
        assert_eq!(selected(&state), "malloc_thing@?");
        type_search(&mut state, "LIBBAR.so+0x");
        assert_eq!(state.message(), Some("match 1 of 1"));
        assert_eq!(selected(&state), "?@?");
        // A located frame's label ("<module> at app.py:1") does not count: "at" finds nothing.
        type_search(&mut state, " at ");
        assert_eq!(state.message(), Some("no match for \"at\""));
    }

    #[test]
    fn the_prompt_takes_keys_until_enter_or_esc() {
        let mut state = State::new(tree_with_imports());
        let before = state.selected();
        run(
            &mut state,
            &[
                Action::Search,
                Action::Input('m'),
                Action::Input('x'),
                Action::Erase,
            ],
        );
        assert_eq!(state.prompt(), Some("m"));
        // Movement keys are not taken as moves while typing.
        run(&mut state, &[Action::Up, Action::Home]);
        assert_eq!(state.selected(), before);
        run(&mut state, &[Action::Cancel]);
        assert_eq!(state.prompt(), None);
        assert!(state.search().is_none());
        type_search(&mut state, "nothing-like-it");
        assert_eq!(state.message(), Some("no match for \"nothing-like-it\""));
        assert_eq!(state.selected(), before);
        run(&mut state, &[Action::Next]);
        assert_eq!(state.message(), Some("no match for \"nothing-like-it\""));
        run(&mut state, &[Action::Search, Action::Quit]);
        assert!(state.quit());
    }

    #[test]
    fn needles_ignore_case() {
        assert!(Needle::new("Load").found_in("_find_and_LOAD"));
        assert!(!Needle::new("loads").found_in("_find_and_load"));
        assert!(Needle::new("ÉTÉ").found_in("/src/été.py"));
        assert!(Needle::new("").found_in("x"));
    }

    #[test]
    fn n_without_a_search_says_so() {
        let mut state = State::new(tree_with_imports());
        run(&mut state, &[Action::Next]);
        assert_eq!(state.message(), Some("no search: press / to search"));
    }

    #[test]
    fn i_hides_and_shows_import_machinery_keeping_the_selection() {
        let mut state = State::new(tree_with_imports());
        assert_eq!(selected(&state), "table@lib.py");
        run(&mut state, &[Action::ToggleImports]);
        assert!(state.hides_imports());
        assert_eq!(
            rows(&state),
            [
                "root",
                "<module>@app.py",
                "<module>@lib.py",
                "table@lib.py",
                "main@app.py"
            ]
        );
        assert_eq!(selected(&state), "table@lib.py");
        assert_eq!(state.tree().nodes[state.selected()].bytes, 160);
        assert_eq!(state.message(), Some("import machinery hidden (3 frames)"));
        // Back: the selection returns to the first table; what was shown stays expanded (both
        // ways to lib.py).
        run(&mut state, &[Action::ToggleImports]);
        assert!(!state.hides_imports());
        assert_eq!(selected(&state), "table@lib.py");
        assert_eq!(state.cursor(), 5);
        assert_eq!(rows(&state).len(), 10);
        // A selected import frame maps to its shown parent.
        run(&mut state, &[Action::Home, Action::Down, Action::Down]);
        assert_eq!(
            selected(&state),
            "_find_and_load@<frozen importlib._bootstrap>"
        );
        run(&mut state, &[Action::ToggleImports]);
        assert_eq!(selected(&state), "<module>@app.py");
    }

    #[test]
    fn a_search_is_redone_when_import_frames_are_hidden() {
        let mut state = State::new(tree_with_imports());
        type_search(&mut state, "table");
        run(&mut state, &[Action::ToggleImports, Action::Next]);
        // The two tables merged into one.
        assert_eq!(state.message(), Some("match 1 of 1"));
    }

    #[test]
    fn a_deep_tree_scrolls_to_keep_the_selection_in_view() {
        let frames: Vec<_> = (0..200)
            .map(|i| loc(&format!("f{i}"), "deep.py", i))
            .collect();
        let tree = CallTree::build([StackAllocations {
            frames: &frames,
            bytes: 1,
            allocations: 1,
            thread: 1,
        }]);
        let mut state = State::new(tree);
        state.set_height(10);
        assert_eq!(state.cursor(), 200);
        assert_eq!(state.offset(), 191);
        run(&mut state, &[Action::Home]);
        assert_eq!(state.offset(), 0);
        run(&mut state, &[Action::PageDown]);
        assert_eq!(state.cursor(), 9);
        assert_eq!(state.offset(), 0);
        run(&mut state, &[Action::Down]);
        assert_eq!(state.offset(), 1);
    }
}
