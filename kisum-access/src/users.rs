//! The set of users of a world or directory: every id in one text arena, indexed by an open-addressing
//! table of row numbers. About 25 bytes per user where a `HashSet<UserId>` costs about 60 (a fat pointer
//! per slot plus an allocation per id), and the directory keeps one entry per user of the platform.

use crate::company::hash_id;

/// A set of user ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSet {
    /// Every id, concatenated in insertion order.
    text: String,
    /// The end of each id in `text`.
    ends: Vec<u32>,
    /// Open addressing over `ends`: the hash's high half and row + 1, 0 when free; a power of two, at
    /// most 3/4 full. The hash half spares reading the arena (another cache miss) on a mismatch.
    table: Vec<u64>,
    /// By row, the hash of a company the user has a membership in (0: none): most users are in one
    /// company, so the index of memberships by user costs 8 bytes a user.
    company: Vec<u64>,
    /// By row, the hashes of the user's further companies.
    more: std::collections::HashMap<u32, Vec<u64>>,
}

fn u32_of(i: usize) -> u32 {
    // INVARIANT: fewer than 2^32 users and bytes of user ids (a 4 GiB arena) per directory.
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl UserSet {
    /// An empty set with room for `n` users.
    pub fn with_capacity(n: usize) -> UserSet {
        UserSet {
            text: String::with_capacity(n * 12),
            ends: Vec::with_capacity(n),
            table: vec![0; (n * 4 / 3 + 1).next_power_of_two().max(16)],
            company: Vec::with_capacity(n),
            more: std::collections::HashMap::new(),
        }
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    fn id(&self, row: usize) -> Option<&str> {
        let start = match row.checked_sub(1) {
            Some(prev) => *self.ends.get(prev)? as usize,
            None => 0,
        };
        self.text.get(start..*self.ends.get(row)? as usize)
    }

    /// The slot of `id`, or of the free slot where it would go; and the id's hash.
    fn probe(&self, id: &str) -> (Result<usize, usize>, u64) {
        let hash = hash_id(id);
        let mask = self.table.len().wrapping_sub(1);
        let mut i = hash as usize & mask;
        for _ in 0..self.table.len() {
            match self.table.get(i).copied() {
                Some(0) | None => return (Err(i), hash),
                Some(s) if s >> 32 == hash >> 32 && self.id((s & 0xffff_ffff) as usize - 1) == Some(id) => {
                    return (Ok(i), hash);
                }
                Some(_) => i = (i + 1) & mask,
            }
        }
        (Err(usize::MAX), hash)
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &str) -> bool {
        self.probe(id).0.is_ok()
    }

    /// Adds `id`; `false` if it was there already.
    pub fn insert(&mut self, id: &str) -> bool {
        if (self.len() + 1) * 4 > self.table.len() * 3 {
            self.grow();
        }
        match self.probe(id) {
            (Ok(_), _) => false,
            (Err(free), hash) => {
                self.text.push_str(id);
                self.ends.push(u32_of(self.text.len()));
                self.company.push(0);
                if let Some(slot) = self.table.get_mut(free) {
                    *slot = (hash >> 32) << 32 | u64::from(u32_of(self.ends.len()));
                }
                true
            }
        }
    }

    fn grow(&mut self) {
        let size = (self.table.len() * 2).max(16);
        self.table = vec![0; size];
        let mask = size - 1;
        for row in 0..self.ends.len() {
            let Some(id) = self.id(row) else { continue };
            let hash = hash_id(id);
            let mut i = hash as usize & mask;
            while self.table.get(i).is_some_and(|s| *s != 0) {
                i = (i + 1) & mask;
            }
            if let Some(slot) = self.table.get_mut(i) {
                *slot = (hash >> 32) << 32 | u64::from(u32_of(row + 1));
            }
        }
    }

    /// Gives back the arena's spare capacity (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.company.shrink_to_fit();
    }

    fn row(&self, id: &str) -> Option<u32> {
        let slot = self.probe(id).0.ok()?;
        self.table.get(slot).map(|s| u32_of((s & 0xffff_ffff) as usize - 1))
    }

    /// Records that `id` has a membership in the company whose hash is `company` (a user not in the set
    /// is ignored: the loader never lets one hold a membership).
    pub fn add_company(&mut self, id: &str, company: u64) {
        let Some(row) = self.row(id) else { return };
        let Some(first) = self.company.get_mut(row as usize) else { return };
        if *first == company {
            return;
        }
        if *first == 0 {
            *first = company;
            return;
        }
        let more = self.more.entry(row).or_default();
        if !more.contains(&company) {
            more.push(company);
        }
    }

    /// Records that `id` no longer has a membership in the company whose hash is `company`.
    pub fn remove_company(&mut self, id: &str, company: u64) {
        let Some(row) = self.row(id) else { return };
        let more = self.more.get_mut(&row);
        let Some(first) = self.company.get_mut(row as usize) else { return };
        match more {
            Some(more) => {
                if *first == company {
                    *first = more.pop().unwrap_or(0);
                } else {
                    more.retain(|c| *c != company);
                }
                if more.is_empty() {
                    self.more.remove(&row);
                }
            }
            None if *first == company => *first = 0,
            None => {}
        }
    }

    /// The hashes of the companies `id` has a membership in.
    pub fn companies_of(&self, id: &str) -> Vec<u64> {
        let Some(row) = self.row(id) else { return Vec::new() };
        let first = self.company.get(row as usize).copied().filter(|c| *c != 0);
        first.into_iter().chain(self.more.get(&row).into_iter().flatten().copied()).collect()
    }

    /// Every id, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len()).filter_map(|row| self.id(row))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn inserts_finds_and_grows() {
        let mut set = UserSet::default();
        for i in 0..1000 {
            assert!(set.insert(&format!("u{i}")));
        }
        assert!(!set.insert("u7"));
        assert_eq!(set.len(), 1000);
        assert!(set.contains("u999") && !set.contains("u1000") && !set.contains(""));
        assert_eq!(set.iter().nth(3), Some("u3"));
    }

    #[test]
    fn companies_by_user() {
        let mut set = UserSet::default();
        set.insert("a");
        set.insert("b");
        set.add_company("a", 7);
        set.add_company("a", 9);
        set.add_company("a", 9);
        set.add_company("ghost", 3);
        assert_eq!(set.companies_of("a"), vec![7, 9]);
        assert!(set.companies_of("b").is_empty() && set.companies_of("ghost").is_empty());
        set.remove_company("a", 7);
        assert_eq!(set.companies_of("a"), vec![9]);
        set.remove_company("a", 9);
        assert!(set.companies_of("a").is_empty());
        assert!(set.more.is_empty());
    }
}
