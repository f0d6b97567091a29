//! A Jepsen-style checker for one partition: the producer records every value it sent (in
//! order) and which were acknowledged; the values read back afterwards are checked for
//! acknowledged values missing (lost), values read twice (duplicated), values out of send
//! order (reordered) and values never sent (unexpected).

use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
pub struct History {
    /// Every value sent, in send order.
    pub sent: Vec<String>,
    pub acked: HashSet<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub acked: usize,
    pub read: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub reordered: Vec<String>,
    pub unexpected: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.unexpected.is_empty()
    }
}

impl History {
    pub fn check(&self, read: &[String]) -> Report {
        let position: HashMap<&str, usize> = self
            .sent
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_str(), i))
            .collect();
        let mut report = Report {
            acked: self.acked.len(),
            read: read.len(),
            ..Report::default()
        };
        let mut seen = HashSet::new();
        let mut last = None;
        for v in read {
            let Some(&at) = position.get(v.as_str()) else {
                report.unexpected.push(v.clone());
                continue;
            };
            if !seen.insert(v.as_str()) {
                report.duplicated.push(v.clone());
                continue;
            }
            if last.is_some_and(|l| at < l) {
                report.reordered.push(v.clone());
            }
            last = Some(at);
        }
        let mut lost: Vec<String> = self
            .acked
            .iter()
            .filter(|v| !seen.contains(v.as_str()))
            .cloned()
            .collect();
        lost.sort_by_key(|v| position.get(v.as_str()).copied());
        report.lost = lost;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_finds_each_kind_of_anomaly() {
        let h = History {
            sent: ["a", "b", "c", "d"].map(String::from).to_vec(),
            acked: ["a", "b", "c"].map(String::from).into_iter().collect(),
        };
        let clean = h.check(&["a", "b", "c"].map(String::from));
        assert!(clean.is_clean(), "{clean:?}");
        let bad = h.check(&["a", "c", "b", "a", "z"].map(String::from));
        assert_eq!(bad.lost, Vec::<String>::new());
        assert_eq!(bad.reordered, vec!["b".to_string()]);
        assert_eq!(bad.duplicated, vec!["a".to_string()]);
        assert_eq!(bad.unexpected, vec!["z".to_string()]);
        let lossy = h.check(&["a".to_string()]);
        assert_eq!(lossy.lost, vec!["b".to_string(), "c".to_string()]);
    }
}
