//! Prepared statements and portals by name, as a session's extended protocol names them.
//!
//! The unnamed statement and portal (the name `""`) are what most drivers use for one-off
//! statements and what `pgbench -M prepared` binds every statement into, so they are kept
//! apart from the named ones: finding them neither hashes nor compares a string. Comparing two
//! empty `String`s calls `memcmp(ptr, ptr, 0)` on their dangling pointers, and glibc's
//! AVX-512 `memcmp` answers that with a masked load from page zero that needs a
//! fault-suppression assist: measured at 12 % of the encrypting proxy's CPU time on
//! `pgbench -M prepared` read-write, where every `Bind` and `Execute` names the unnamed portal.

use std::collections::HashMap;

/// Values by statement or portal name.
pub(crate) struct ByName<V> {
    unnamed: Option<V>,
    named: HashMap<String, V>,
}

impl<V> Default for ByName<V> {
    fn default() -> Self {
        Self {
            unnamed: None,
            named: HashMap::new(),
        }
    }
}

impl<V> ByName<V> {
    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name)
        }
    }

    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`; returns what it had.
    pub(crate) fn insert(&mut self, name: &str, value: V) -> Option<V> {
        if name.is_empty() {
            self.unnamed.replace(value)
        } else if let Some(slot) = self.named.get_mut(name) {
            Some(std::mem::replace(slot, value))
        } else {
            self.named.insert(name.to_owned(), value)
        }
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<V> {
        if name.is_empty() {
            self.unnamed.take()
        } else {
            self.named.remove(name)
        }
    }

    pub(crate) fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::ByName;

    #[test]
    fn unnamed_and_named_are_separate_entries() {
        let mut names = ByName::default();
        assert_eq!(names.insert("", 1), None);
        assert_eq!(names.insert("s1", 2), None);
        assert_eq!(names.get(""), Some(&1));
        assert_eq!(names.get("s1"), Some(&2));
        assert_eq!(names.insert("", 3), Some(1));
        assert_eq!(names.insert("s1", 4), Some(2));
        if let Some(value) = names.get_mut("s1") {
            *value = 5;
        }
        assert_eq!(names.remove(""), Some(3));
        assert!(!names.contains_key(""));
        assert!(names.contains_key("s1"));
        assert_eq!(names.remove("s1"), Some(5));
        names.insert("", 6);
        names.insert("p", 7);
        names.clear();
        assert_eq!((names.get(""), names.get("p")), (None, None));
    }
}
