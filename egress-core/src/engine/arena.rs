//! Interned, reference-counted lists: equal lists are stored once and compared by id.
//!
//! Endpoints selected by one policy through one gateway carry identical entry lists; storing
//! each distinct list once keeps memory proportional to the distinct lists, not endpoints.

use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

/// Id of an interned list. `EMPTY` is always the empty list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ListId(u32);

impl ListId {
    /// The empty list (never freed).
    pub(crate) const EMPTY: ListId = ListId(0);
}

impl Default for ListId {
    fn default() -> Self {
        ListId::EMPTY
    }
}

struct Stored<T> {
    items: Box<[T]>,
    refs: u32,
}

/// Interner with reference counts; ids of freed lists are reused. Each list is stored once:
/// the index holds ids and hashes the lists it points to.
pub(crate) struct Arena<T> {
    slots: Vec<Option<Stored<T>>>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    free: Vec<u32>,
}

fn items_of<T>(slots: &[Option<Stored<T>>], id: u32) -> &[T] {
    match slots.get(id as usize) {
        Some(Some(slot)) => &slot.items,
        _ => &[],
    }
}

impl<T: Clone + Eq + Hash> Arena<T> {
    pub(crate) fn new() -> Self {
        let mut arena = Self {
            slots: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            free: Vec::new(),
        };
        let empty = arena.intern(Vec::new());
        debug_assert_eq!(empty, ListId::EMPTY);
        arena
    }

    /// Interns `items`, taking one reference.
    pub(crate) fn intern(&mut self, items: Vec<T>) -> ListId {
        self.intern_new(items).0
    }

    /// Interns `items`, taking one reference; `true` when the list was not stored before.
    pub(crate) fn intern_new(&mut self, items: Vec<T>) -> (ListId, bool) {
        let hash = self.hasher.hash_one(items.as_slice());
        let slots = &self.slots;
        if let Some(&id) = self
            .index
            .find(hash, |&id| items_of(slots, id) == items.as_slice())
        {
            self.retain(ListId(id));
            return (ListId(id), false);
        }
        let slot = Some(Stored {
            items: items.into_boxed_slice(),
            refs: 1,
        });
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, id, |&i| hasher.hash_one(items_of(slots, i)));
        (ListId(id), true)
    }

    /// Takes one more reference.
    pub(crate) fn retain(&mut self, id: ListId) {
        if let Some(Some(slot)) = self.slots.get_mut(id.0 as usize) {
            slot.refs += 1;
        }
    }

    /// Drops one reference; the list is freed with its last one (the empty list never is).
    /// Returns whether it was freed.
    pub(crate) fn release(&mut self, id: ListId) -> bool {
        if id == ListId::EMPTY {
            return false;
        }
        let Some(entry) = self.slots.get_mut(id.0 as usize) else {
            return false;
        };
        let Some(slot) = entry else { return false };
        slot.refs -= 1;
        if slot.refs == 0 {
            let hash = self.hasher.hash_one(&*slot.items);
            if let Ok(found) = self.index.find_entry(hash, |&i| i == id.0) {
                found.remove();
            }
            *entry = None;
            self.free.push(id.0);
            return true;
        }
        false
    }

    /// The id's position, for side tables indexed by list.
    pub(crate) fn index_of(id: ListId) -> usize {
        id.0 as usize
    }

    /// The list's items (empty for an unknown id).
    pub(crate) fn get(&self, id: ListId) -> &[T] {
        items_of(&self.slots, id.0)
    }

    /// Heap bytes held (lists, slot table, index), estimated from capacities.
    pub(crate) fn heap_bytes(&self) -> usize {
        let items: usize = self
            .slots
            .iter()
            .flatten()
            .map(|s| s.items.len() * size_of::<T>())
            .sum();
        items
            + self.slots.capacity() * size_of::<Option<Stored<T>>>()
            + self.index.capacity() * (size_of::<u32>() + 1)
            + self.free.capacity() * size_of::<u32>()
    }

    /// Number of live lists and of items they hold.
    pub(crate) fn size(&self) -> (usize, usize) {
        let live = self.slots.iter().flatten();
        let (lists, items) = live.fold((0, 0), |(l, i), s| (l + 1, i + s.items.len()));
        (lists, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_shares_and_frees() {
        let mut a: Arena<u8> = Arena::new();
        let x = a.intern(vec![1, 2]);
        let y = a.intern(vec![1, 2]);
        assert_eq!(x, y);
        assert_eq!(a.get(x), &[1, 2]);
        assert_eq!(a.intern(vec![]), ListId::EMPTY);
        a.release(x);
        assert_eq!(a.get(y), &[1, 2], "one reference left");
        a.release(y);
        assert_eq!(a.get(y), &[] as &[u8], "freed");
        let z = a.intern(vec![3]);
        assert_eq!(z, x, "ids are reused");
        assert_eq!(a.size(), (2, 1));
        a.release(ListId::EMPTY);
        assert_eq!(a.intern(vec![]), ListId::EMPTY);
    }
}
