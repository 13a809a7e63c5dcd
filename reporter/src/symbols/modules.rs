//! The module map: which loaded module (executable or shared library) an address belongs to.

use crate::capture::decode::Module;

/// Address ranges of the modules' loaded segments.
#[derive(Debug, Default)]
pub struct ModuleMap {
    pub modules: Vec<Module>,
    /// (start, end, module index), sorted by start.
    ranges: Vec<(u64, u64, usize)>,
}

impl ModuleMap {
    /// A map of `modules`; a module recorded without a path (the main program, as the dynamic
    /// linker names it) takes the path `exe`.
    pub fn new(mut modules: Vec<Module>, exe: &[u8]) -> ModuleMap {
        let mut ranges = Vec::new();
        for (i, m) in modules.iter_mut().enumerate() {
            if m.path.is_empty() {
                m.path = exe.to_vec();
            }
            for s in &m.segments {
                let Some(start) = m.base.checked_add(s.vaddr) else {
                    continue;
                };
                let end = start.saturating_add(s.memsz);
                if end > start {
                    ranges.push((start, end, i));
                }
            }
        }
        ranges.sort_unstable();
        ModuleMap { modules, ranges }
    }

    /// The module holding `addr` and the address relative to the module's base (its virtual
    /// address in the ELF file).
    pub fn find(&self, addr: u64) -> Option<(usize, u64)> {
        let n = self.ranges.partition_point(|r| r.0 <= addr);
        // Look back over ranges that start before addr; a later module wins over an earlier one
        // that once occupied the same addresses.
        let mut best: Option<usize> = None;
        for &(start, end, m) in self.ranges[..n].iter().rev().take(8) {
            if start <= addr && addr < end && best.is_none_or(|b| m > b) {
                best = Some(m);
            }
        }
        best.map(|m| (m, addr.wrapping_sub(self.modules[m].base)))
    }

    /// The file name of a module's path.
    pub fn name(&self, module: usize) -> String {
        let path = self.modules.get(module).map(|m| &m.path[..]).unwrap_or(b"");
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        if name.is_empty() {
            "?".to_string()
        } else {
            String::from_utf8_lossy(name).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memtrace_format::record::Segment;

    #[test]
    fn finds_modules_by_segment() {
        let seg = |vaddr, memsz| Segment {
            vaddr,
            memsz,
            file_offset: 0,
        };
        let map = ModuleMap::new(
            vec![
                Module {
                    base: 0x1000_0000,
                    path: b"/lib/libfoo.so".to_vec(),
                    build_id: vec![],
                    segments: vec![seg(0, 0x1000), seg(0x2000, 0x1000)],
                },
                Module {
                    base: 0,
                    path: vec![],
                    build_id: vec![],
                    segments: vec![seg(0x400000, 0x1000)],
                },
            ],
            b"/usr/bin/prog",
        );
        assert_eq!(map.find(0x1000_2010), Some((0, 0x2010)));
        assert_eq!(map.find(0x1000_1010), None);
        assert_eq!(map.find(0x400010), Some((1, 0x400010)));
        assert_eq!(map.name(0), "libfoo.so");
        assert_eq!(map.name(1), "prog");
    }
}
