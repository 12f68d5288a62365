//! The points file: how many points each lab part is worth.
//!
//! One entry per line, `<lab> <part> <points>`, e.g. `raft 3A 10`; blank lines and everything
//! after a `#` are ignored. Lab names are lower case, parts are matched case-insensitively.
//! A part's points are awarded only when every one of its tests passed every run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Points per `(lab, PART)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Points(pub BTreeMap<(String, String), u32>);

impl Points {
    pub fn parse(text: &str) -> Result<Points> {
        let mut map = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [lab, part, points] = fields[..] else {
                bail!(
                    "line {}: expected `<lab> <part> <points>`, got {line:?}",
                    n + 1
                );
            };
            let points: u32 = points
                .parse()
                .with_context(|| format!("line {}: points {points:?} is not a number", n + 1))?;
            let key = (lab.to_lowercase(), part.to_uppercase());
            if map.insert(key, points).is_some() {
                bail!("line {}: {lab} {part} is listed twice", n + 1);
            }
        }
        Ok(Points(map))
    }

    pub fn load(path: &Path) -> Result<Points> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the points file {}", path.display()))?;
        Points::parse(&text).with_context(|| format!("in the points file {}", path.display()))
    }

    /// The points `lab`'s `part` is worth, if the file lists it.
    pub fn get(&self, lab: &str, part: &str) -> Option<u32> {
        self.0
            .get(&(lab.to_lowercase(), part.to_uppercase()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::Points;

    #[test]
    fn parses_entries_and_comments() {
        let p = Points::parse("# header\nraft 3A 5\n\n  raft 3b 10 # trailing\n").unwrap();
        assert_eq!(p.get("raft", "3A"), Some(5));
        assert_eq!(p.get("raft", "3B"), Some(10));
        assert_eq!(p.get("kvraft", "4A"), None);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(Points::parse("raft 3A").is_err());
        assert!(Points::parse("raft 3A five").is_err());
        assert!(Points::parse("raft 3A 1\nraft 3a 2").is_err());
    }
}
