//! A slab of values by small integer id, grown in fixed-size chunks: at 150,000 items a
//! doubling `Vec` would hold up to twice the memory, chunks hold at most one chunk more.

const CHUNK: usize = 1024;

/// Values by id; freed ids are reused.
pub(crate) struct Slab<T> {
    chunks: Vec<Box<[Option<T>]>>,
    next: u32,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            next: 0,
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn get(&self, id: u32) -> Option<&T> {
        let i = id as usize;
        self.chunks
            .get(i / CHUNK)
            .and_then(|c| c[i % CHUNK].as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let i = id as usize;
        self.chunks
            .get_mut(i / CHUNK)
            .and_then(|c| c[i % CHUNK].as_mut())
    }

    fn slot(&mut self, id: u32) -> &mut Option<T> {
        let i = id as usize;
        while self.chunks.len() <= i / CHUNK {
            self.chunks.push((0..CHUNK).map(|_| None).collect());
        }
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    /// The value under `id`, stored as `T::default()` when missing.
    pub(crate) fn slot_or_default(&mut self, id: u32) -> &mut T
    where
        T: Default,
    {
        if self.get(id).is_none() {
            self.put(id, T::default());
        }
        self.slot(id).get_or_insert_with(T::default)
    }

    /// Stores a value under a fresh (or reused) id.
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        let id = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        self.put(id, value);
        id
    }

    /// Stores a value under `id` (which must be free or this slab's own), replacing any.
    pub(crate) fn put(&mut self, id: u32, value: T) {
        if self.slot(id).replace(value).is_none() {
            self.len += 1;
        }
        self.next = self.next.max(id + 1);
    }

    /// Takes the value out, keeping the id reserved (for a replacement `put`).
    pub(crate) fn take(&mut self, id: u32) -> Option<T> {
        let value = self.slot(id).take();
        if value.is_some() {
            self.len -= 1;
        }
        value
    }

    /// Removes the value and frees its id.
    pub(crate) fn remove(&mut self, id: u32) -> Option<T> {
        let value = self.take(id);
        if value.is_some() {
            self.free.push(id);
        }
        value
    }

    /// Marks a taken id free again.
    pub(crate) fn release_id(&mut self, id: u32) {
        if self.get(id).is_none() {
            self.free.push(id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * size_of::<Option<T>>()
            + self.chunks.capacity() * size_of::<Box<[Option<T>]>>()
            + self.free.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reused_and_chunks_grow() {
        let mut s: Slab<u64> = Slab::default();
        let ids: Vec<u32> = (0..2000).map(|i| s.insert(i)).collect();
        assert_eq!(ids[1999], 1999);
        assert_eq!(s.len(), 2000);
        assert_eq!(s.remove(5), Some(5));
        assert_eq!(s.get(5), None);
        assert_eq!(s.insert(42), 5);
        assert_eq!(s.take(6), Some(6));
        s.put(6, 60);
        assert_eq!(s.get(6), Some(&60));
        *s.get_mut(6).unwrap() += 1;
        assert_eq!(s.iter().find(|(i, _)| *i == 6).map(|(_, v)| *v), Some(61));
        assert_eq!(s.len(), 2000);
        assert_eq!(s.take(7), Some(7));
        s.release_id(7);
        assert_eq!(s.insert(70), 7);
    }
}
