//! Keys to actions. While the search prompt is open, printable keys are text.

use super::state::Action;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Whether the key is Ctrl-Z: in raw mode a key, not a signal; the UI suspends itself as the
/// terminal would have stopped it (terminal::Session::suspend).
pub fn is_suspend(key: KeyEvent) -> bool {
    key.kind != KeyEventKind::Release
        && key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char('z') | KeyCode::Char('Z'))
}

/// The action of a key, if it has one.
pub fn action(key: KeyEvent, prompting: bool) -> Option<Action> {
    // Key releases and repeats (reported by some terminals) are not presses.
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    // In raw mode Ctrl-C is a key, not a signal: it quits from anywhere.
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
        return Some(Action::Quit);
    }
    if prompting {
        return match key.code {
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Esc => Some(Action::Cancel),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Char(c) if !ctrl => Some(Action::Input(c)),
            _ => None,
        };
    }
    let action = match key.code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Enter | KeyCode::Char(' ') => Action::Toggle,
        KeyCode::Right | KeyCode::Char('l') => Action::Expand,
        KeyCode::Left | KeyCode::Char('h') => Action::Collapse,
        KeyCode::Char('e') => Action::ExpandAll,
        KeyCode::Char('/') => Action::Search,
        KeyCode::Char('n') => Action::Next,
        KeyCode::Char('N') => Action::Previous,
        KeyCode::Char('i') => Action::ToggleImports,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn browsing_keys() {
        let cases = [
            (KeyCode::Up, Action::Up),
            (KeyCode::Char('k'), Action::Up),
            (KeyCode::Down, Action::Down),
            (KeyCode::Char('j'), Action::Down),
            (KeyCode::Enter, Action::Toggle),
            (KeyCode::Char(' '), Action::Toggle),
            (KeyCode::Right, Action::Expand),
            (KeyCode::Left, Action::Collapse),
            (KeyCode::Char('e'), Action::ExpandAll),
            (KeyCode::Char('/'), Action::Search),
            (KeyCode::Char('n'), Action::Next),
            (KeyCode::Char('i'), Action::ToggleImports),
            (KeyCode::Char('q'), Action::Quit),
            (KeyCode::Esc, Action::Quit),
            (KeyCode::PageDown, Action::PageDown),
            (KeyCode::End, Action::End),
        ];
        for (code, want) in cases {
            assert_eq!(action(key(code), false), Some(want), "{code:?}");
        }
        assert_eq!(action(key(KeyCode::Char('z')), false), None);
    }

    #[test]
    fn the_prompt_takes_text() {
        assert_eq!(
            action(key(KeyCode::Char('q')), true),
            Some(Action::Input('q'))
        );
        assert_eq!(
            action(key(KeyCode::Char('/')), true),
            Some(Action::Input('/'))
        );
        assert_eq!(action(key(KeyCode::Esc), true), Some(Action::Cancel));
        assert_eq!(action(key(KeyCode::Enter), true), Some(Action::Submit));
        assert_eq!(action(key(KeyCode::Backspace), true), Some(Action::Erase));
        assert_eq!(action(key(KeyCode::Up), true), None);
    }

    #[test]
    fn ctrl_c_quits_anywhere() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_c, false), Some(Action::Quit));
        assert_eq!(action(ctrl_c, true), Some(Action::Quit));
    }

    #[test]
    fn releases_are_ignored() {
        let mut k = key(KeyCode::Char('j'));
        k.kind = KeyEventKind::Release;
        assert_eq!(action(k, false), None);
    }
}
