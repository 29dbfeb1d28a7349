//! A fixed-capacity bitset over interned catalog items (modules, features, permissions).

use std::fmt;

/// Words kept inline: capacities up to 256 bits need no heap allocation, so a bitset over a catalog of
/// a few hundred permissions sits in the struct that owns it (one cache line fewer per check).
const INLINE_WORDS: usize = 4;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Words {
    Inline { len: u8, data: [u64; INLINE_WORDS] },
    Heap(Box<[u64]>),
}

/// A set of dense indices `0..capacity`, one bit each.
///
/// Sets combined with each other must have been created with the same capacity (they always are when
/// they index the same catalog); bits beyond the shorter operand are treated as absent.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BitSet {
    words: Words,
}

impl Default for BitSet {
    fn default() -> Self {
        BitSet::new(0)
    }
}

impl BitSet {
    /// An empty set able to hold `0..capacity`.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.div_ceil(64);
        let words = match u8::try_from(n) {
            Ok(len) if n <= INLINE_WORDS => Words::Inline { len, data: [0; INLINE_WORDS] },
            _ => Words::Heap(vec![0; n].into_boxed_slice()),
        };
        BitSet { words }
    }

    #[inline]
    fn words(&self) -> &[u64] {
        match &self.words {
            Words::Inline { len, data } => data.get(..usize::from(*len)).unwrap_or(&[]),
            Words::Heap(words) => words,
        }
    }

    #[inline]
    fn words_mut(&mut self) -> &mut [u64] {
        match &mut self.words {
            Words::Inline { len, data } => data.get_mut(..usize::from(*len)).unwrap_or(&mut []),
            Words::Heap(words) => words,
        }
    }

    /// A set holding every index in `0..capacity`.
    pub fn full(capacity: usize) -> Self {
        let mut set = BitSet::new(capacity);
        for i in 0..capacity {
            set.insert(i);
        }
        set
    }

    /// Whether `i` is in the set. An index past the capacity is never in it.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words().get(i >> 6).is_some_and(|w| (w >> (i & 63)) & 1 == 1)
    }

    /// Adds `i`; an index past the capacity is ignored.
    #[inline]
    pub fn insert(&mut self, i: usize) {
        if let Some(w) = self.words_mut().get_mut(i >> 6) {
            *w |= 1 << (i & 63);
        }
    }

    /// Removes `i`.
    #[inline]
    pub fn remove(&mut self, i: usize) {
        if let Some(w) = self.words_mut().get_mut(i >> 6) {
            *w &= !(1 << (i & 63));
        }
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        self.words_mut().iter_mut().zip(other.words()).for_each(|(a, b)| *a |= b);
    }

    /// Keeps only the members also in `other`.
    pub fn intersect_with(&mut self, other: &BitSet) {
        let other = other.words();
        for (i, a) in self.words_mut().iter_mut().enumerate() {
            *a &= other.get(i).copied().unwrap_or(0);
        }
    }

    /// Removes every member of `other`.
    pub fn difference_with(&mut self, other: &BitSet) {
        self.words_mut().iter_mut().zip(other.words()).for_each(|(a, b)| *a &= !b);
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words().iter().all(|w| *w == 0)
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: &BitSet) -> bool {
        let other = other.words();
        self.words().iter().enumerate().all(|(i, a)| a & !other.get(i).copied().unwrap_or(0) == 0)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.words().iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Removes every member.
    pub fn clear(&mut self) {
        self.words_mut().iter_mut().for_each(|w| *w = 0);
    }

    /// The members, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(i, &word)| {
            let mut w = word;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

impl fmt::Debug for BitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut a = BitSet::new(130);
        a.insert(0);
        a.insert(64);
        a.insert(129);
        a.insert(500); // ignored
        assert!(a.contains(129) && !a.contains(1) && !a.contains(500));
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 64, 129]);
        let mut b = BitSet::new(130);
        b.insert(64);
        b.insert(5);
        let mut i = a.clone();
        i.intersect_with(&b);
        assert_eq!(i.iter().collect::<Vec<_>>(), [64]);
        assert!(i.is_subset(&a) && i.is_subset(&b) && !a.is_subset(&b));
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u.len(), 4);
        u.difference_with(&a);
        assert_eq!(u.iter().collect::<Vec<_>>(), [5]);
        u.remove(5);
        assert!(u.is_empty());
        assert_eq!(BitSet::full(70).len(), 70);
        // Past the inline capacity the words move to the heap; behaviour is the same.
        let mut big = BitSet::full(1000);
        big.remove(999);
        assert_eq!(big.len(), 999);
        assert!(big.contains(998) && !big.contains(999) && !big.contains(1000));
        assert!(BitSet::new(256).is_empty());
        assert_eq!(BitSet::full(256).len(), 256);
    }
}
